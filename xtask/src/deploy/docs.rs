//! The image recipe and the operator docs: `deploy/Dockerfile` installs what the manifests
//! run, and every link in `deploy/README.md` (to files and to top-level README sections) resolves.

use std::path::Path;

use super::GATEWAY_IN_IMAGE;

/// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Anchors of every heading of a Markdown text (outside code blocks).
pub fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Targets of the inline links `[text](target)` of a Markdown text.
pub fn links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .filter(|t| !t.contains("://") && !t.contains(' '))
        .collect()
}

/// Links of `doc` (a file under `root`) whose file or heading does not exist.
pub fn broken_links(root: &Path, doc: &str) -> Vec<String> {
    let path = root.join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let dir = path.parent().unwrap_or(root);
    let mut broken = Vec::new();
    for link in links(&text) {
        let (file, fragment) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
        let target = if file.is_empty() { path.clone() } else { dir.join(file) };
        if !target.exists() {
            broken.push(format!("{doc}: {link}: no such file"));
        } else if let Some(fragment) = fragment {
            let body = std::fs::read_to_string(&target).unwrap_or_default();
            if !anchors(&body).iter().any(|a| a == fragment) {
                broken.push(format!("{doc}: {link}: no such heading"));
            }
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        assert_eq!(anchor(" eBPF data plane (XDP)"), "ebpf-data-plane-xdp");
        assert_eq!(anchor(" Troubleshooting: symptom → where to look"), "troubleshooting-symptom--where-to-look");
        assert_eq!(links("see [a](x.md#b) and [c](https://e.org) [d](#e)"), ["x.md#b", "#e"]);
    }

    #[test]
    fn deploy_readme_links_resolve() {
        let root = crate::repo_root();
        let readme = std::fs::read_to_string(root.join("deploy/README.md")).unwrap();
        assert!(links(&readme).iter().any(|l| l.starts_with("../README.md#")), "links no README section");
        let broken = broken_links(&root, "deploy/README.md");
        assert!(broken.is_empty(), "{broken:#?}");
        let dir = crate::deploy::scratch(&root, "doc-links");
        std::fs::write(dir.join("README.md"), "# Top\n## Real section\n").unwrap();
        std::fs::write(dir.join("doc.md"), "[x](README.md#no-such) [y](missing.yaml) [z](README.md#real-section)")
            .unwrap();
        assert_eq!(broken_links(&dir, "doc.md").len(), 2, "{:?}", broken_links(&dir, "doc.md"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_top_level_readme_points_to_the_deploy_guide() {
        let readme = std::fs::read_to_string(crate::repo_root().join("README.md")).unwrap();
        let section = readme.find("\n## Deployment\n").expect("a ## Deployment section");
        assert!(readme[section..].find("\n## Tests\n").is_some(), "## Deployment comes before ## Tests");
        assert!(readme[section..].contains("(deploy/README.md)"));
    }

    /// The image has what the DaemonSet runs: the gateway at [`GATEWAY_IN_IMAGE`] (its init
    /// container runs `validate` from there) and as entrypoint, built by the two stages.
    #[test]
    fn the_dockerfile_installs_what_the_manifests_run() {
        let root = crate::repo_root();
        let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
        let copies: Vec<Vec<&str>> = dockerfile
            .lines()
            .filter(|l| l.starts_with("COPY --from=build "))
            .map(|l| l.split_whitespace().skip(2).collect())
            .collect();
        assert!(
            copies.iter().any(|c| c.last() == Some(&GATEWAY_IN_IMAGE)),
            "no COPY of the gateway to {GATEWAY_IN_IMAGE}"
        );
        let froms: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert!(
            froms.len() == 2 && froms[0].contains("rust:") && froms[1].contains("debian:bookworm-slim"),
            "{froms:?}"
        );
        assert!(dockerfile.contains("cargo build --release --locked -p mcp-gateway"));
        assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/mcp-gateway\"]"));
        let ignore = std::fs::read_to_string(root.join("deploy/Dockerfile.dockerignore")).unwrap();
        assert!(ignore.lines().any(|l| l.trim() == "target/"), "the build context would carry target/");
    }
}
