"""Expands a SAM template into plain CloudFormation, offline.

    python expand_sam.py TEMPLATE [REGION]

Reads the template (JSON), applies the `AWS::Serverless-2016-10-31` transform with
aws-sam-translator as CloudFormation would, and writes the expanded template as JSON to stdout.
Needs no credentials and no network: the region comes from the command line (default
us-east-1) through a session that is never used to call AWS, and the managed-policy map, which
the translator would otherwise download, is empty. Tessera's functions name their own roles, so
the translator creates no role and looks no managed policy up (given a policy name it does not
know, it would write `arn:aws:iam::aws:policy/<name>` unchecked; the deploy test checks that the
expanded templates attach no managed policy).

Used by the deploy test (`tests/it/deploy.rs`) with `$TESSERA_SAM_PYTHON`, a Python with
aws-sam-translator installed.
"""

import json
import sys

import boto3
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator


def expand(template, region):
    session = boto3.session.Session(
        aws_access_key_id="offline",
        aws_secret_access_key="offline",
        region_name=region,
    )

    def no_managed_policies():
        return {}

    translator = Translator({}, Parser(), boto_session=session)
    return translator.translate(
        template,
        parameter_values={},
        get_managed_policy_map=no_managed_policies,
    )


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    region = argv[2] if len(argv) == 3 else "us-east-1"
    with open(argv[1], encoding="utf-8") as f:
        template = json.load(f)
    try:
        expanded = expand(template, region)
    except InvalidDocumentException as e:
        for cause in e.causes:
            sys.stderr.write(f"{cause.message}\n")
        sys.stderr.write(f"{argv[1]}: {e.message}\n")
        return 1
    json.dump(expanded, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
