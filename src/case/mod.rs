//! The case format: model, page selections, expected messages, steps, and the loader.

pub(crate) mod document;
pub(crate) mod faults;
pub mod load;
pub(crate) mod model;
pub(crate) mod pages;
pub(crate) mod step;
pub mod stress;

pub use document::Case;
pub use load::{load_path, LoadError, LoadedCase};
pub use step::{Op, Step};

/// The JSON Schema (draft-07) of a case file, generated from the Rust types.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Case>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
