//! The opt-in wire trace: each SOAP request and response written to a folder, numbered, with
//! Authorization (and anything else that can carry a secret) redacted before it reaches disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const REDACTED: &str = "[redacted]";

/// Headers whose values are never written.
fn secret_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "www-authenticate"
    )
}

/// Element names whose text is never written (matched on the local name, any case).
fn secret_element(local: &str) -> bool {
    let l = local.to_ascii_lowercase();
    ["password", "secret", "token", "credential"]
        .iter()
        .any(|s| l.contains(s))
}

/// Replaces the content of password-like elements. Works on the text, so a body that is not
/// even well-formed is redacted too.
pub(crate) fn redact_body(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find('>') else {
            out.push_str(after);
            return out;
        };
        let tag = &after[..=close];
        out.push_str(tag);
        rest = &after[close + 1..];
        let is_open_tag = !tag.starts_with("</") && !tag.starts_with("<?") && !tag.ends_with("/>");
        if !is_open_tag {
            continue;
        }
        let name = tag[1..tag.len() - 1]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        if secret_element(local) {
            let end_tag = format!("</{name}>");
            out.push_str(REDACTED);
            match rest.find(&end_tag) {
                Some(end) => rest = &rest[end..],
                // Unterminated: nothing after the opening tag can be trusted to be harmless.
                None => return out,
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) struct WireTrace {
    dir: PathBuf,
    seq: AtomicU64,
}

impl WireTrace {
    pub(crate) fn new(dir: &Path) -> std::io::Result<Self> {
        private_dir(dir)?;
        Ok(WireTrace {
            dir: dir.to_owned(),
            seq: AtomicU64::new(0),
        })
    }

    /// Writes `NNNNNN-Operation.xml` (request), `.response.xml` and `.http.txt` (headers).
    pub(crate) fn record(
        &self,
        operation: &str,
        url: &str,
        request_headers: &[(&str, String)],
        request: &str,
        status: Option<u16>,
        response: Option<&str>,
    ) {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let op: String = operation
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let base = self.dir.join(format!("{n:06}-{op}"));
        let mut meta = format!("POST {url}\n");
        for (name, value) in request_headers {
            let value = if secret_header(name) { REDACTED } else { value };
            meta.push_str(&format!("{name}: {value}\n"));
        }
        meta.push_str(&format!(
            "\nstatus: {}\n",
            status.map_or_else(|| "no response".to_owned(), |s| s.to_string())
        ));
        let mut results = vec![
            write_private(&base.with_extension("xml"), redact_body(request)),
            write_private(&base.with_extension("http.txt"), meta),
        ];
        if let Some(response) = response {
            results.push(write_private(
                &base.with_extension("response.xml"),
                redact_body(response),
            ));
        }
        for r in results {
            if let Err(e) = r {
                tracing::warn!(error = %e, dir = %self.dir.display(), "writing the wire trace failed");
            }
        }
    }
}

/// The trace holds every synced contact and event: its folder and files are the service
/// user's alone, whatever the process umask.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_ref())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn secrets_never_reach_the_trace() {
        let dir = tempfile::tempdir().unwrap();
        let trace = WireTrace::new(dir.path()).unwrap();
        trace.record(
            "GetFolder",
            "https://mail.contoso.test/EWS/Exchange.asmx",
            &[
                ("Authorization", "Basic c3ZjOmh1bnRlcjI=".into()),
                ("X-AnchorMailbox", "ann@contoso.test".into()),
            ],
            "<m:X><t:Password>hunter2</t:Password><t:Subject>keep</t:Subject><ApiToken a=\"1\">tok-123</ApiToken></m:X>",
            Some(200),
            Some("<r><ClientSecret>s3cr3t</ClientSecret></r>"),
        );
        let mut all = String::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
        for secret in ["hunter2", "c3ZjOmh1bnRlcjI", "tok-123", "s3cr3t"] {
            assert!(
                !all.contains(secret),
                "{secret} leaked into the trace:\n{all}"
            );
        }
        assert!(all.contains("keep"));
        assert!(all.contains("X-AnchorMailbox: ann@contoso.test"));
        assert!(dir.path().join("000000-GetFolder.xml").exists());
        assert!(dir.path().join("000000-GetFolder.response.xml").exists());
    }

    #[test]
    fn redaction_survives_broken_markup() {
        assert_eq!(redact_body("<Password>x"), "<Password>[redacted]");
        assert_eq!(redact_body("a<b"), "a<b");
        assert_eq!(
            redact_body("<p:password>x</p:password>"),
            "<p:password>[redacted]</p:password>"
        );
    }
}
