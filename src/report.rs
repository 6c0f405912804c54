//! The operators' page: [`Report`] rendered with minijinja from the templates
//! under `templates/` (embedded in the binary; a `--templates DIR` holding a
//! file of the same name replaces it). Pure: the same report and templates
//! give the same bytes.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};

use crate::error::{Error, ExitClass, Refusal, Result};
use crate::ops::report::Report;

/// The page.
pub const PAGE: &str = "report.html";

/// The templates shipped in the binary, by name.
const EMBEDDED: [(&str, &str); 2] = [
    (PAGE, include_str!("../templates/report.html")),
    ("report.css", include_str!("../templates/report.css")),
];

/// The templates a report is rendered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    sources: Vec<(&'static str, String)>,
}

impl Default for Templates {
    fn default() -> Templates {
        Templates {
            sources: EMBEDDED.iter().map(|(n, s)| (*n, (*s).to_string())).collect(),
        }
    }
}

impl Templates {
    /// The embedded templates, each replaced by a file of its name in `dir`.
    /// A file there that is not one of them is refused (a typo would
    /// otherwise be ignored silently).
    pub fn with_overrides(dir: &Path) -> Result<Templates> {
        let entries = std::fs::read_dir(dir).map_err(|e| TemplateError::Unreadable {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut t = Templates::default();
        for entry in entries {
            let entry = entry.map_err(Error::file("read", dir.to_path_buf()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(slot) = t.sources.iter_mut().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
                return Err(TemplateError::Unknown {
                    dir: dir.to_path_buf(),
                    name,
                    known: known.join(", "),
                }
                .into());
            };
            slot.1 = std::fs::read_to_string(entry.path()).map_err(Error::file("read", entry.path()))?;
        }
        let checked = t.clone();
        checked.environment()?;
        Ok(t)
    }

    fn environment(&self) -> Result<Environment<'_>> {
        let mut env = Environment::new();
        // A misspelt field printed is an error, not an empty cell.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.add_filter("bytes", human_bytes);
        for (name, source) in &self.sources {
            env.add_template(name, source).map_err(|e| TemplateError::Invalid {
                name,
                reason: e.to_string(),
            })?;
        }
        Ok(env)
    }
}

/// `1234567 | bytes` → `1.2 MB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The page for `report`.
pub fn render(report: &Report, templates: &Templates) -> Result<String> {
    let env = templates.environment()?;
    let page = env
        .get_template(PAGE)
        .map_err(|e| TemplateError::NoPage { reason: e.to_string() })?;
    page.render(minijinja::context! { report => report })
        .map_err(|e| TemplateError::CannotRender { reason: e.to_string() }.into())
}

/// The report's templates that cannot be used, and a report that cannot
/// be written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The `--templates` folder cannot be read.
    #[error("--templates {}: cannot read the folder ({reason}); give a folder holding report.html and/or report.css", dir.display())]
    Unreadable {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The folder holds a file that is no template of the report.
    #[error("--templates {}: {name} is not a template otapub renders (known: {known}); rename or remove it", dir.display())]
    Unknown {
        /// The folder.
        dir: PathBuf,
        /// The file.
        name: String,
        /// The templates otapub renders.
        known: String,
    },
    /// A template does not parse.
    #[error("template {name}: {reason}; fix the template given with --templates")]
    Invalid {
        /// The template.
        name: &'static str,
        /// The parser's error.
        reason: String,
    },
    /// The page template is missing.
    #[error(
        "template {}: {reason}; give a report.html with --templates, or none to use the built-in one",
        PAGE
    )]
    NoPage {
        /// minijinja's error.
        reason: String,
    },
    /// The page template fails on this report.
    #[error(
        "template {} cannot render this report: {reason}; fix the template given with --templates",
        PAGE
    )]
    CannotRender {
        /// minijinja's error.
        reason: String,
    },
    /// The report cannot be serialized.
    #[error("index: the report cannot be written as JSON ({reason})")]
    Json {
        /// serde's error.
        reason: String,
    },
}

impl Refusal for TemplateError {
    fn class(&self) -> ExitClass {
        match self {
            TemplateError::Unreadable { .. }
            | TemplateError::Unknown { .. }
            | TemplateError::Invalid { .. }
            | TemplateError::NoPage { .. }
            | TemplateError::CannotRender { .. } => ExitClass::Input,
            TemplateError::Json { .. } => ExitClass::Environment,
        }
    }
}

/// The JSON the page shows, as `report.json` holds it.
pub fn json(report: &Report) -> Result<String> {
    serde_json::to_string_pretty(report)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| TemplateError::Json { reason: e.to_string() }.into())
}

/// Renders the page and writes `index.html` and `report.json` into `dir`
/// (created if missing); returns the page's path.
pub fn write(dir: &Path, report: &Report, templates: &Templates) -> Result<std::path::PathBuf> {
    let page = render(report, templates)?;
    let json = json(report)?;
    std::fs::create_dir_all(dir).map_err(Error::file("create", dir.to_path_buf()))?;
    for (name, bytes) in [("report.json", json.as_bytes()), ("index.html", page.as_bytes())] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(Error::file("write", path.clone()))?;
    }
    Ok(dir.join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(5_000_000_000), "5.0 GB");
    }
}
