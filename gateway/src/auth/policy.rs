//! Per-tool authorization: `auth.policy` rules map callers (by scope,
//! subject, issuer or claim values) to the tools, prompts and resources they
//! may use, by name (URI for resources) with `*` / `?` globs.
//!
//! Semantics: a category (tools, prompts, resources) that no rule mentions is
//! unrestricted. Once any rule mentions it, it is deny-by-default and a caller
//! may use the union of what the rules matching them grant. The result is an
//! [`Access`], computed once per verified credential and cached with it, so a
//! request only runs the glob match.

use std::sync::Arc;

use serde_json::Value;

use crate::config::{PolicyMatch, PolicyRule};
use crate::session::token::Principal;

/// What a grant is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// `tools/call`, `tools/list`.
    Tools,
    /// `prompts/get`, `prompts/list`.
    Prompts,
    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`, `resources/list`
    /// (matched on the URI) and `resources/templates/list` (matched on the URI template).
    Resources,
}

impl Category {
    /// All categories, in index order.
    pub const ALL: [Category; 3] = [Self::Tools, Self::Prompts, Self::Resources];

    fn index(self) -> usize {
        match self {
            Self::Tools => 0,
            Self::Prompts => 1,
            Self::Resources => 2,
        }
    }

    /// The singular noun, for messages and metric labels.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Tools => "tool",
            Self::Prompts => "prompt",
            Self::Resources => "resource",
        }
    }

    /// The category a JSON-RPC method uses one item of (`tools/call` → tools).
    pub fn of_call(method: &str) -> Option<Self> {
        match method {
            "tools/call" => Some(Self::Tools),
            "prompts/get" => Some(Self::Prompts),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some(Self::Resources),
            _ => None,
        }
    }

    /// The category a JSON-RPC method lists (`tools/list` → tools).
    pub fn of_list(method: &str) -> Option<Self> {
        match method {
            "tools/list" => Some(Self::Tools),
            "prompts/list" => Some(Self::Prompts),
            "resources/list" | "resources/templates/list" => Some(Self::Resources),
            _ => None,
        }
    }

    /// The members of a list result holding items, each with the item field matched.
    pub fn list_fields(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Tools => &[("tools", "name")],
            Self::Prompts => &[("prompts", "name")],
            Self::Resources => &[("resources", "uri"), ("resourceTemplates", "uriTemplate")],
        }
    }
}

/// What one caller may use in one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Everything (the category is not restricted).
    Any,
    /// Only names matching one of these globs (none: nothing).
    Only(Arc<[String]>),
}

impl Grant {
    /// Whether `name` is allowed.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(globs) => globs.iter().any(|g| glob(g, name)),
        }
    }
}

/// What one caller may use, per category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access([Grant; 3]);

impl Access {
    /// Unrestricted.
    pub const fn all() -> Self {
        Self([Grant::Any, Grant::Any, Grant::Any])
    }

    /// The grant for one category.
    pub fn grant(&self, c: Category) -> &Grant {
        &self.0[c.index()]
    }

    /// True when no category is restricted.
    pub fn is_unrestricted(&self) -> bool {
        self.0.iter().all(|g| *g == Grant::Any)
    }
    /// Tools restricted to `globs`, the rest unrestricted (unit tests).
    #[cfg(test)]
    pub fn only_tools(globs: &[&str]) -> Self {
        let globs: Vec<String> = globs.iter().map(|g| (*g).to_owned()).collect();
        Self([Grant::Only(globs.into()), Grant::Any, Grant::Any])
    }

    /// Every category restricted: tools, prompts, resources (unit tests).
    #[cfg(test)]
    pub fn restricted(tools: &[&str], prompts: &[&str], resources: &[&str]) -> Self {
        let only = |g: &[&str]| Grant::Only(g.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>().into());
        Self([only(tools), only(prompts), only(resources)])
    }
}

/// The facts about a caller that rules match on.
#[derive(Debug)]
pub struct Subject<'a> {
    /// Issuer and subject.
    pub principal: &'a Principal,
    /// Granted scopes.
    pub scopes: &'a [String],
    /// Claims kept for policy and headers.
    pub claims: &'a [(String, Value)],
}

/// The compiled `auth.policy`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<PolicyRule>,
}

impl Policy {
    /// Compile the configured rules.
    pub fn new(rules: &[PolicyRule]) -> Self {
        Self { rules: rules.to_vec() }
    }

    /// Claim names the rules look at (besides `sub`, `iss`, `scope`).
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().flat_map(|r| r.when.claims.iter().map(|(name, _)| name.as_str()))
    }

    /// Scopes named in rules (for `scopes_supported`).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| r.when.scope.as_deref())
    }

    fn grants(rule: &PolicyRule, c: Category) -> Option<&Vec<String>> {
        match c {
            Category::Tools => rule.tools.as_ref(),
            Category::Prompts => rule.prompts.as_ref(),
            Category::Resources => rule.resources.as_ref(),
        }
    }

    /// What `who` may use.
    pub fn access(&self, who: &Subject<'_>) -> Access {
        let mut access = Access::all();
        for c in Category::ALL {
            if !self.rules.iter().any(|r| Self::grants(r, c).is_some()) {
                continue;
            }
            let globs: Vec<String> = self
                .rules
                .iter()
                .filter(|r| matches(&r.when, who))
                .filter_map(|r| Self::grants(r, c))
                .flatten()
                .cloned()
                .collect();
            access.0[c.index()] = Grant::Only(globs.into());
        }
        access
    }

    /// Scopes that would grant `name` in `c` through a scope-conditioned rule
    /// (sent as `scope="…"` with 403 `insufficient_scope`, for step-up authorization).
    pub fn scopes_granting(&self, c: Category, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rule in &self.rules {
            let Some(scope) = &rule.when.scope else { continue };
            let grants = Self::grants(rule, c).is_some_and(|g| g.iter().any(|p| glob(p, name)));
            if grants && !out.contains(scope) {
                out.push(scope.clone());
            }
        }
        out
    }
}

fn matches(when: &PolicyMatch, who: &Subject<'_>) -> bool {
    let scope_ok = when.scope.as_ref().is_none_or(|s| who.scopes.contains(s));
    let subject_ok = when.subject.as_ref().is_none_or(|s| *s == who.principal.subject);
    let issuer_ok = when.issuer.as_ref().is_none_or(|s| *s == who.principal.issuer);
    let claims_ok = when
        .claims
        .iter()
        .all(|(name, want)| who.claims.iter().find(|(n, _)| n == name).is_some_and(|(_, v)| claim_has(v, want)));
    scope_ok && subject_ok && issuer_ok && claims_ok
}

/// A claim equals `want`, or is an array with an element equal to it (strings, numbers, booleans).
pub fn claim_has(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => (if *b { "true" } else { "false" }) == want,
        Value::Array(items) => items.iter().any(|i| !i.is_array() && claim_has(i, want)),
        Value::Null | Value::Object(_) => false,
    }
}

/// Glob match: `*` any run of characters (including `/`), `?` one character, else literal.
/// Iterative with one backtrack point: linear in practice, never exponential.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(when: PolicyMatch, tools: Option<&[&str]>, resources: Option<&[&str]>) -> PolicyRule {
        let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        PolicyRule { when, tools: list(tools), prompts: None, resources: list(resources) }
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("echo", "echo", true),
            ("echo", "echo2", false),
            ("get_*", "get_user", true),
            ("get_*", "set_user", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*_admin_*", "db_admin_drop", true),
            ("file:///docs/*", "file:///docs/a/b.md", true),
            ("file:///docs/*", "file:///etc/passwd", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("日*", "日本", true),
        ] {
            assert_eq!(glob(p, t), want, "{p} ~ {t}");
        }
        // Pathological patterns stay fast.
        let long = "a".repeat(5000);
        assert!(!glob("*a*a*a*a*a*a*b", &long));
    }

    #[test]
    fn access_is_the_union_of_matching_rules() {
        let admin = PolicyMatch { scope: Some("admin".into()), ..Default::default() };
        let group = PolicyMatch { claims: vec![("groups".into(), "ops".into())], ..Default::default() };
        let policy = Policy::new(&[
            rule(PolicyMatch::default(), Some(&["echo", "whoami"]), None),
            rule(admin, Some(&["*"]), None),
            rule(group, Some(&["large"]), Some(&["file:///ops/*"])),
        ]);
        let p = Principal { issuer: "i".into(), subject: "bob".into() };
        let plain = policy.access(&Subject { principal: &p, scopes: &[], claims: &[] });
        assert!(plain.grant(Category::Tools).allows("echo"));
        assert!(!plain.grant(Category::Tools).allows("large"));
        assert!(!plain.grant(Category::Resources).allows("file:///ops/x"));
        assert!(plain.grant(Category::Prompts).allows("anything"));
        assert!(!plain.is_unrestricted());

        let claims = vec![("groups".to_owned(), json!(["dev", "ops"]))];
        let ops = policy.access(&Subject { principal: &p, scopes: &[], claims: &claims });
        assert!(ops.grant(Category::Tools).allows("large"));
        assert!(ops.grant(Category::Resources).allows("file:///ops/runbook"));

        let scopes = vec!["admin".to_owned()];
        let admin = policy.access(&Subject { principal: &p, scopes: &scopes, claims: &[] });
        assert!(admin.grant(Category::Tools).allows("sleep"));
        assert_eq!(policy.scopes_granting(Category::Tools, "sleep"), ["admin"]);
        assert!(policy.scopes_granting(Category::Tools, "echo").contains(&"admin".to_owned()));
        assert!(Policy::default().access(&Subject { principal: &p, scopes: &[], claims: &[] }).is_unrestricted());
    }

    #[test]
    fn methods_map_to_categories() {
        for (method, call, list) in [
            ("tools/call", Some(Category::Tools), None),
            ("tools/list", None, Some(Category::Tools)),
            ("prompts/get", Some(Category::Prompts), None),
            ("prompts/list", None, Some(Category::Prompts)),
            ("resources/read", Some(Category::Resources), None),
            ("resources/subscribe", Some(Category::Resources), None),
            ("resources/unsubscribe", Some(Category::Resources), None),
            ("resources/list", None, Some(Category::Resources)),
            ("resources/templates/list", None, Some(Category::Resources)),
            ("initialize", None, None),
            ("completion/complete", None, None),
        ] {
            assert_eq!((Category::of_call(method), Category::of_list(method)), (call, list), "{method}");
        }
        let members: Vec<&str> = Category::Resources.list_fields().iter().map(|(m, _)| *m).collect();
        assert_eq!(members, ["resources", "resourceTemplates"]);
    }

    #[test]
    fn claim_values() {
        assert!(claim_has(&json!("x"), "x"));
        assert!(claim_has(&json!(42), "42"));
        assert!(claim_has(&json!(true), "true"));
        assert!(claim_has(&json!(["a", 1]), "1"));
        assert!(!claim_has(&json!([["x"]]), "x"));
        assert!(!claim_has(&json!({"x": 1}), "x"));
        assert!(!claim_has(&Value::Null, "null"));
    }
}
