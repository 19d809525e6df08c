//! Message templates: `<dir>/<name>.<lang>.txt`, minijinja, with a fallback chain of
//! languages. A file may open with `Subject: …` and a blank line (the e-mail subject); the
//! rest is the body. Templates are read and checked once, at load: a syntax error is a
//! configuration problem with its file and line, never a failed send at 3 a.m.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Problem;

/// One language of a template.
#[derive(Debug, Clone)]
struct Source {
    title: Option<String>,
    body: String,
}

/// The key a template's body (and, with `#title`, its subject) is compiled under.
fn compiled_name(name: &str, lang: &str, part: &str) -> String {
    format!("{name}.{lang}{part}")
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub language: String,
    pub title: Option<String>,
    pub body: String,
}

/// Every template of the templates folder, compiled once (a send renders, it never parses).
#[derive(Debug, Clone)]
pub struct Templates {
    /// (name, language) → whether it has a subject line; the texts live in `compiled`.
    sources: HashMap<(String, String), bool>,
    compiled: minijinja::Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut compiled = minijinja::Environment::new();
        // Text messages: nothing is escaped, whatever a template's name ends with.
        compiled.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        Templates {
            sources: HashMap::new(),
            compiled,
        }
    }
}

impl Templates {
    /// Reads `dir`; every unreadable or ill-formed file is a problem. A missing folder holds
    /// no templates.
    pub fn load_dir(dir: &Path, problems: &mut Vec<Problem>) -> Templates {
        let mut t = Templates::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return t;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = file_name.strip_suffix(".txt") else {
                continue;
            };
            let shown = path.display().to_string();
            let problem = |line: Option<u64>, message: String| Problem {
                file: shown.clone(),
                line,
                field: String::new(),
                message,
            };
            let Some((name, lang)) = stem.rsplit_once('.') else {
                problems.push(problem(
                    None,
                    "a template is named <name>.<lang>.txt (e.g. appointment-reminder.vi.txt)".into(),
                ));
                continue;
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(problem(None, format!("cannot read: {e}")));
                    continue;
                }
            };
            match parse(&text) {
                Ok(source) => t.add(name, &lang.to_lowercase(), source),
                Err((line, message)) => {
                    problems.push(problem(Some(line), message));
                    continue;
                }
            };
        }
        t
    }

    /// A template from text (tests).
    pub fn insert(&mut self, name: &str, lang: &str, text: &str) -> Result<(), String> {
        let source = parse(text).map_err(|(line, m)| format!("line {line}: {m}"))?;
        self.add(name, lang, source);
        Ok(())
    }

    /// Keeps a checked template and compiles it (`parse` checked its syntax already).
    fn add(&mut self, name: &str, lang: &str, source: Source) {
        let has_title = source.title.is_some();
        if let Some(title) = source.title {
            let _ = self
                .compiled
                .add_template_owned(compiled_name(name, lang, "#title"), title);
        }
        let _ = self
            .compiled
            .add_template_owned(compiled_name(name, lang, ""), source.body);
        self.sources
            .insert((name.to_string(), lang.to_string()), has_title);
    }

    pub fn has(&self, name: &str) -> bool {
        self.sources.keys().any(|(n, _)| n == name)
    }

    /// The language `name` is rendered in for this chain: its first language the template
    /// exists in, then `en`, then any.
    pub fn pick(&self, name: &str, chain: &[String]) -> Option<String> {
        let mut tried: Vec<&str> = chain.iter().map(String::as_str).collect();
        tried.push("en");
        tried
            .iter()
            .find(|l| self.sources.contains_key(&(name.to_string(), l.to_string())))
            .map(|l| l.to_string())
            .or_else(|| {
                let mut langs: Vec<&String> = self
                    .sources
                    .keys()
                    .filter(|(n, _)| n == name)
                    .map(|(_, l)| l)
                    .collect();
                langs.sort();
                langs.first().map(|l| l.to_string())
            })
    }

    /// Renders `name` in the first language of `chain` it exists in, then `en`, then any.
    pub fn render(
        &self,
        name: &str,
        chain: &[String],
        context: &serde_json::Value,
    ) -> Result<Rendered, String> {
        let lang = self
            .pick(name, chain)
            .ok_or_else(|| format!("no template named {name}"))?;
        self.render_in(name, &lang, context)
    }

    /// Renders `name` in `lang` (which must exist: see [`Self::pick`]).
    pub fn render_in(&self, name: &str, lang: &str, context: &serde_json::Value) -> Result<Rendered, String> {
        let has_title = *self
            .sources
            .get(&(name.to_string(), lang.to_string()))
            .ok_or_else(|| format!("no template {name}.{lang}"))?;
        let ctx = minijinja::Value::from_serialize(context);
        let render = |part: &str| {
            self.compiled
                .get_template(&compiled_name(name, lang, part))
                .and_then(|t| t.render(&ctx))
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("template {name}.{lang}: {e}"))
        };
        Ok(Rendered {
            title: has_title.then(|| render("#title")).transpose()?,
            body: render("")?,
            language: lang.to_string(),
        })
    }
}

/// Splits the subject line off and checks both parts' syntax.
fn parse(text: &str) -> Result<Source, (u64, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (title, body, body_line) = match text.strip_prefix("Subject:") {
        Some(rest) => {
            let (first, after) = rest.split_once('\n').unwrap_or((rest, ""));
            (
                Some(first.trim().to_string()),
                after.trim_start_matches(['\r', '\n']),
                2,
            )
        }
        None => (None, text, 1),
    };
    let env = minijinja::Environment::new();
    if let Some(t) = &title {
        env.template_from_str(t).map_err(|e| (1, syntax(&e)))?;
    }
    env.template_from_str(body)
        .map_err(|e| (body_line + e.line().unwrap_or(1) as u64, syntax(&e)))?;
    if body.trim().is_empty() {
        return Err((body_line, "the template has no body".into()));
    }
    Ok(Source {
        title,
        body: body.to_string(),
    })
}

fn syntax(e: &minijinja::Error) -> String {
    format!("template syntax: {}", e.detail().unwrap_or("invalid"))
}

/// A language code as the clinic's systems write it (`vi`, `vi-VN`, `VIE`, `zh_Hans`) in
/// its two-letter form.
pub fn normalize_language(code: &str) -> Option<String> {
    let base = code.trim().split(['-', '_', '^']).next()?.to_lowercase();
    let two = match base.as_str() {
        "vie" => "vi",
        "rus" => "ru",
        "zho" | "chi" | "cmn" => "zh",
        "eng" => "en",
        "" => return None,
        other => other,
    };
    Some(two.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_language_chain_falls_back_to_english_then_to_any() {
        let mut t = Templates::default();
        t.insert(
            "r",
            "vi",
            "Subject: Nhắc lịch {{ clinic.name }}\n\nXin chào {{ patient.name }}",
        )
        .unwrap();
        t.insert("r", "en", "Hello {{ patient.name }}").unwrap();
        let ctx = json!({"patient": {"name": "Lan"}, "clinic": {"name": "Sao Mai"}});
        let vi = t.render("r", &["vi".into()], &ctx).unwrap();
        assert_eq!(vi.title.as_deref(), Some("Nhắc lịch Sao Mai"));
        assert_eq!(vi.body, "Xin chào Lan");
        let fallback = t.render("r", &["ru".into(), "fr".into()], &ctx).unwrap();
        assert_eq!(
            (fallback.language.as_str(), fallback.body.as_str()),
            ("en", "Hello Lan")
        );
        assert!(t.render("missing", &[], &ctx).is_err());
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let mut t = Templates::default();
        let e = t
            .insert("r", "en", "Subject: ok\n\nline one\n{% if x %}never closed")
            .unwrap_err();
        assert!(e.starts_with("line 4"), "{e}");
    }

    #[test]
    fn language_codes_are_read_in_every_form() {
        assert_eq!(normalize_language("vi-VN").as_deref(), Some("vi"));
        assert_eq!(normalize_language("VIE").as_deref(), Some("vi"));
        assert_eq!(normalize_language("zh_Hans").as_deref(), Some("zh"));
        assert_eq!(normalize_language("ru").as_deref(), Some("ru"));
        assert_eq!(normalize_language(" "), None);
    }
}
