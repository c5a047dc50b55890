//! Integration tests of the five stages, run against the embedded ports: a mesh written into a
//! temporary directory, buckets as folders, the file catalog and the in-process bus.

mod support;

mod ingest_csv;
