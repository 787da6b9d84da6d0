//! A small YAML document tree with a line and column on every key and value.
//!
//! Built from yaml-rust2's event parser (not its `Yaml` type, which drops
//! positions) so that validation can point at the exact place of each problem.
//! Only what a config file needs is kept: mappings, sequences and scalars.
//! Anchors, aliases, tags, duplicate keys, non-scalar keys and a second
//! document are reported as errors; the tree is still built around them so
//! the rest of the file gets validated too.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::errors::ConfigError;

/// A 1-based position in the source text (ordered by line, then column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        // yaml-rust2 markers: 1-based line, 0-based column.
        Self { line: m.line(), column: m.col() + 1 }
    }
}

/// A value with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    /// Where the value starts (for a block mapping: its first key).
    pub pos: Pos,
    /// The value itself.
    pub kind: Kind,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// An empty value, `~` or `null` (unquoted).
    Null,
    /// Any other scalar, as written (quoting removed).
    Scalar(String),
    /// A mapping, in file order; keys are unique.
    Map(Vec<Entry>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A value already reported as an error (an alias): validation skips it.
    Invalid,
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key starts.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// Parses `text` into a tree. Returns the root (`None` for an empty document
/// or a syntax error) and every structural error found.
pub(super) fn parse(text: &str, file: &str) -> (Option<Node>, Vec<ConfigError>) {
    let mut builder = Builder { file, stack: Vec::new(), root: None, documents: 0, errors: Vec::new() };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let mut pos = Pos::from_marker(*e.marker());
        let mut hint = "";
        if e.info().contains("tab") {
            // The scanner marks the token before the tab; point at the tab itself.
            pos = first_tab_from(text, pos.line).unwrap_or(pos);
            hint = " (indent YAML with spaces, not tabs)";
        }
        let message = format!("YAML syntax error: {}{hint}", e.info());
        builder.errors.push(ConfigError::new(file, pos.line, pos.column, "", message));
        return (None, builder.errors);
    }
    (builder.root, builder.errors)
}

/// The position of the first tab on or after 1-based `line`.
fn first_tab_from(text: &str, line: usize) -> Option<Pos> {
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find_map(|(i, l)| l.chars().position(|c| c == '\t').map(|col| Pos { line: i + 1, column: col + 1 }))
}

/// A mapping key that has been read and waits for its value.
#[derive(Debug)]
enum PendingKey {
    Valid(String, Pos),
    /// A non-scalar key, already reported: its value is dropped.
    Invalid,
}

/// A collection being filled.
#[derive(Debug)]
enum Frame {
    Map { start: Pos, path: String, entries: Vec<Entry>, key: Option<PendingKey> },
    Seq { start: Pos, path: String, items: Vec<Node> },
}

#[derive(Debug)]
struct Builder<'f> {
    file: &'f str,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    errors: Vec<ConfigError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn is_null(value: &str, style: TScalarStyle) -> bool {
    style == TScalarStyle::Plain && matches!(value, "" | "~" | "null" | "Null" | "NULL")
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        if self.documents > 1 {
            return; // everything after a second `---` was reported once and is ignored
        }
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.error(pos, "", "only one YAML document is allowed per file (found a second `---`)");
                }
            }
            Event::Alias(_) => {
                let path = self.child_path();
                self.error(pos, &path, "aliases (`*name`) are not supported; write the value out");
                self.deliver(Node { pos, kind: Kind::Invalid });
            }
            Event::Scalar(value, style, anchor, tag) => {
                self.check_decorations(pos, anchor, tag.as_ref());
                let kind = if is_null(&value, style) { Kind::Null } else { Kind::Scalar(value) };
                self.deliver(Node { pos, kind });
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_decorations(pos, anchor, tag.as_ref());
                let path = self.child_path();
                self.stack.push(Frame::Seq { start: pos, path, items: Vec::new() });
            }
            Event::MappingStart(anchor, tag) => {
                self.check_decorations(pos, anchor, tag.as_ref());
                let path = self.child_path();
                self.stack.push(Frame::Map { start: pos, path, entries: Vec::new(), key: None });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { start, items, .. }) => self.deliver(Node { pos: start, kind: Kind::Seq(items) }),
                Some(Frame::Map { start, entries, .. }) => {
                    // A block mapping's start marker lies after its first key; a flow one's is the `{`.
                    let pos = entries.first().map_or(start, |e| e.key_pos.min(start));
                    self.deliver(Node { pos, kind: Kind::Map(entries) });
                }
                None => {}
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

impl Builder<'_> {
    fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, pos.line, pos.column, key, message));
    }

    /// Anchors (`&a`) and tags (`!!str`) are not part of the config language.
    fn check_decorations(&mut self, pos: Pos, anchor: usize, tag: Option<&Tag>) {
        let path = self.child_path();
        if anchor != 0 {
            self.error(pos, &path, "anchors (`&name`) are not supported; write the value out");
        }
        if let Some(tag) = tag {
            let written = match tag.handle.as_str() {
                "!" => format!("!{}", tag.suffix),
                "tag:yaml.org,2002:" => format!("!!{}", tag.suffix),
                handle => format!("{handle}{}", tag.suffix),
            };
            let message = format!("tags (`{written}`) are not supported; remove the tag");
            self.error(pos, &path, message);
        }
    }

    /// The dotted path of the node that starts next.
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key: Some(PendingKey::Valid(k, _)), .. }) => join(path, k),
            Some(Frame::Map { path, .. }) => path.clone(),
            Some(Frame::Seq { path, items, .. }) => format!("{path}[{}]", items.len()),
        }
    }

    /// Hands a finished node to its parent: a sequence item, a mapping key or value, or the root.
    fn deliver(&mut self, mut node: Node) {
        let Builder { file, stack, root, errors, .. } = self;
        let mut report = |pos: Pos, key: &str, message: String| {
            errors.push(ConfigError::new(file, pos.line, pos.column, key, message));
        };
        let (path, entries, key) = match stack.last_mut() {
            None => {
                root.get_or_insert(node);
                return;
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                return;
            }
            Some(Frame::Map { path, entries, key, .. }) => (path, entries, key),
        };
        let Some(pending) = key.take() else {
            *key = Some(match node.kind {
                Kind::Scalar(text) => PendingKey::Valid(text, node.pos),
                Kind::Null => PendingKey::Valid(String::new(), node.pos),
                Kind::Map(_) | Kind::Seq(_) | Kind::Invalid => {
                    report(node.pos, path, "mapping keys must be plain words, not collections".into());
                    PendingKey::Invalid
                }
            });
            return;
        };
        let PendingKey::Valid(name, key_pos) = pending else { return };
        let full = join(path, &name);
        if name.is_empty() {
            report(key_pos, &full, "empty mapping key".into());
        } else if let Some(first) = entries.iter().find(|e| e.key == name) {
            report(key_pos, &full, format!("duplicate key {name:?} (first defined at line {})", first.key_pos.line));
        } else {
            if node.kind == Kind::Null {
                // An empty value's marker points past the line end; the key is where the reader looks.
                node.pos = key_pos;
            }
            entries.push(Entry { key: name, key_pos, value: node });
        }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
