//! Rendering for `-o json|yaml|text`: JSON and YAML are the serde form of the
//! value (the wire format is documented on the rendered type, e.g.
//! [`crate::decision::Verdict`]); text is for people.

use std::io::Write;

use serde::Serialize;

use crate::decision::Verdict;

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON (one document).
    Json,
    /// YAML.
    Yaml,
}

/// Write `value` as JSON or YAML.
///
/// # Errors
/// I/O errors, or a serializer error.
pub fn write_structured<T: Serialize>(
    out: &mut dyn Write,
    format: Format,
    value: &T,
) -> std::io::Result<()> {
    match format {
        Format::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(std::io::Error::other)?;
            out.write_all(text.as_bytes())
        }
        _ => {
            serde_json::to_writer_pretty(&mut *out, value)?;
            writeln!(out)
        }
    }
}

/// Write a verdict in `format`.
///
/// # Errors
/// I/O errors.
pub fn write_verdict(
    out: &mut dyn Write,
    format: Format,
    subject: &str,
    verdict: &Verdict,
) -> std::io::Result<()> {
    if format != Format::Text {
        return write_structured(out, format, verdict);
    }
    let status = if verdict.allowed { "ALLOWED" } else { "DENIED" };
    writeln!(out, "{subject}: {status}")?;
    for result in &verdict.results {
        let state = match (&result.error, result.allowed) {
            (Some(_), _) => "error",
            (None, true) if result.violations.is_empty() => "pass",
            (None, true) => "warn",
            (None, false) => "deny",
        };
        writeln!(out, "  {:<6} {}", state, result.policy)?;
        for v in &result.violations {
            writeln!(out, "         [{}] {}", v.rule, v.message)?;
        }
        if let Some(fault) = &result.error {
            writeln!(out, "         fault ({:?}): {}", fault.kind, fault.message)?;
        }
        if let Some(patch) = &result.patch {
            writeln!(out, "         patch: {patch}")?;
        }
        for w in &result.warnings {
            writeln!(out, "         warning: {w}")?;
        }
    }
    Ok(())
}
