//! CloudFormation building blocks: intrinsic functions, tags, policy statements, and a template
//! that refuses two resources with one logical id.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{Error, Result};

/// `{"Ref": id}`.
pub fn reference(id: &str) -> Value {
    json!({ "Ref": id })
}

/// `{"Fn::GetAtt": [id, attribute]}`.
pub fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// `{"Fn::Sub": text}`.
pub fn sub(text: impl Into<String>) -> Value {
    json!({ "Fn::Sub": text.into() })
}

/// `{"Fn::ImportValue": name}`.
pub fn import(name: &str) -> Value {
    json!({ "Fn::ImportValue": name })
}

/// The account's root principal, as key policies name it.
pub fn account_root() -> Value {
    json!({ "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") })
}

/// The ARN of an S3 bucket, or of objects in it matching `pattern` (`raw/*`).
pub fn s3_arn(bucket: &str, pattern: Option<&str>) -> Value {
    match pattern {
        Some(p) => sub(format!("arn:${{AWS::Partition}}:s3:::{bucket}/{p}")),
        None => sub(format!("arn:${{AWS::Partition}}:s3:::{bucket}")),
    }
}

/// The ARN of a Glue Data Catalog resource of this account and region (`catalog`,
/// `database/<db>`, `table/<db>/*`).
pub fn glue_arn(resource: &str) -> Value {
    sub(format!(
        "arn:${{AWS::Partition}}:glue:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"
    ))
}

/// An IAM policy statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Statement id.
    pub sid: String,
    /// `Allow` or `Deny`.
    pub allow: bool,
    /// Principal (resource policies only).
    pub principal: Option<Value>,
    /// Actions.
    pub actions: Vec<String>,
    /// Resources.
    pub resources: Vec<Value>,
    /// Condition block.
    pub condition: Option<Value>,
}

impl Statement {
    /// An `Allow` of `actions` on `resources`.
    pub fn allow(sid: &str, actions: &[&str], resources: Vec<Value>) -> Statement {
        Statement {
            sid: sid.to_owned(),
            allow: true,
            principal: None,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources,
            condition: None,
        }
    }

    /// A `Deny` of `actions` on `resources`.
    pub fn deny(sid: &str, actions: &[&str], resources: Vec<Value>) -> Statement {
        Statement {
            allow: false,
            ..Statement::allow(sid, actions, resources)
        }
    }

    /// The same statement granted to `principal`.
    pub fn to(mut self, principal: Value) -> Statement {
        self.principal = Some(principal);
        self
    }

    /// The same statement under `condition`.
    pub fn when(mut self, condition: Value) -> Statement {
        self.condition = Some(condition);
        self
    }

    /// The statement as policy JSON.
    pub fn to_json(&self) -> Value {
        let mut s = Map::new();
        s.insert("Sid".into(), json!(self.sid));
        s.insert(
            "Effect".into(),
            json!(if self.allow { "Allow" } else { "Deny" }),
        );
        if let Some(p) = &self.principal {
            s.insert("Principal".into(), p.clone());
        }
        s.insert(
            "Action".into(),
            one_or_many(self.actions.iter().map(|a| json!(a))),
        );
        // Trust policies name no resource.
        if !self.resources.is_empty() {
            s.insert(
                "Resource".into(),
                one_or_many(self.resources.iter().cloned()),
            );
        }
        if let Some(c) = &self.condition {
            s.insert("Condition".into(), c.clone());
        }
        Value::Object(s)
    }
}

fn one_or_many(items: impl Iterator<Item = Value>) -> Value {
    let mut items: Vec<Value> = items.collect();
    if items.len() == 1 {
        items.remove(0)
    } else {
        Value::Array(items)
    }
}

/// A policy document.
pub fn policy(statements: &[Statement]) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": statements.iter().map(Statement::to_json).collect::<Vec<_>>(),
    })
}

/// Tags of a resource, by key.
#[derive(Debug, Clone, Default)]
pub struct Tags(BTreeMap<String, String>);

/// Tag naming the mesh a resource belongs to.
pub const MESH_TAG: &str = "tessera:mesh";
/// Tag naming the domain a resource belongs to.
pub const DOMAIN_TAG: &str = "tessera:domain";
/// Tag naming the data product a resource belongs to.
pub const PRODUCT_TAG: &str = "tessera:product";

impl Tags {
    /// The tags of a resource of the mesh.
    pub fn mesh(mesh: &str) -> Tags {
        Tags(BTreeMap::from([(MESH_TAG.to_owned(), mesh.to_owned())]))
    }

    /// The tags of a resource of one domain.
    pub fn domain(mesh: &str, domain: &str) -> Tags {
        let mut tags = Tags::mesh(mesh);
        tags.0.insert(DOMAIN_TAG.to_owned(), domain.to_owned());
        tags
    }

    /// These tags plus the product's.
    pub fn product(mut self, product: &str) -> Tags {
        self.0.insert(PRODUCT_TAG.to_owned(), product.to_owned());
        self
    }

    /// As CloudFormation's list of `{Key, Value}`.
    pub fn list(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(k, v)| json!({ "Key": k, "Value": v }))
                .collect(),
        )
    }

    /// As SAM's map.
    pub fn map(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    }
}

/// `Metadata` telling checkov which of its checks do not apply to a resource, and why.
pub fn checkov_skips(skips: &[(&str, &str)]) -> Value {
    json!({
        "checkov": {
            "skip": skips
                .iter()
                .map(|(id, comment)| json!({ "id": id, "comment": comment }))
                .collect::<Vec<_>>()
        }
    })
}

/// A template being built.
#[derive(Debug, Default)]
pub struct Template {
    description: String,
    transform: Option<String>,
    parameters: Map<String, Value>,
    rules: Map<String, Value>,
    conditions: Map<String, Value>,
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
}

impl Template {
    /// An empty template.
    pub fn new(description: impl Into<String>) -> Template {
        Template {
            description: description.into(),
            ..Template::default()
        }
    }

    /// A template the SAM transform expands.
    pub fn serverless(mut self) -> Template {
        self.transform = Some("AWS::Serverless-2016-10-31".into());
        self
    }

    /// Adds a resource; two resources may not share a logical id.
    pub fn resource(&mut self, id: &str, resource: Value) -> Result<()> {
        if !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.is_empty() {
            return Err(Error::Config(format!(
                "`{id}` is not a valid logical id (letters and digits only)"
            )));
        }
        if self.resources.insert(id.to_owned(), resource).is_some() {
            return Err(Error::Config(format!(
                "two resources would have the logical id `{id}`"
            )));
        }
        Ok(())
    }

    /// Adds a parameter.
    pub fn parameter(&mut self, id: &str, parameter: Value) {
        self.parameters.insert(id.to_owned(), parameter);
    }

    /// Adds a condition.
    pub fn condition(&mut self, id: &str, condition: Value) {
        self.conditions.insert(id.to_owned(), condition);
    }

    /// Adds a rule (assertions checked before any change is made).
    pub fn rule(&mut self, id: &str, rule: Value) {
        self.rules.insert(id.to_owned(), rule);
    }

    /// Adds an output, exported under `export` if given.
    pub fn output(&mut self, id: &str, description: &str, value: Value, export: Option<&str>) {
        let mut o = Map::new();
        o.insert("Description".into(), json!(description));
        o.insert("Value".into(), value);
        if let Some(name) = export {
            o.insert("Export".into(), json!({ "Name": name }));
        }
        self.outputs.insert(id.to_owned(), Value::Object(o));
    }

    /// The template.
    pub fn build(self) -> Value {
        let mut t = Map::new();
        t.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
        if let Some(transform) = self.transform {
            t.insert("Transform".into(), json!(transform));
        }
        t.insert("Description".into(), json!(self.description));
        for (name, section) in [
            ("Parameters", self.parameters),
            ("Rules", self.rules),
            ("Conditions", self.conditions),
            ("Resources", self.resources),
            ("Outputs", self.outputs),
        ] {
            if !section.is_empty() {
                t.insert(name.into(), Value::Object(section));
            }
        }
        Value::Object(t)
    }
}
