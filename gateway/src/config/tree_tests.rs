use super::*;

fn ok(text: &str) -> Node {
    let (root, errors) = parse(text, "t.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    root.unwrap()
}

fn errors(text: &str) -> Vec<String> {
    parse(text, "t.yaml").1.iter().map(ToString::to_string).collect()
}

fn entries(node: &Node) -> &[Entry] {
    match &node.kind {
        Kind::Map(e) => e,
        other => panic!("not a map: {other:?}"),
    }
}

fn at(line: usize, column: usize) -> Pos {
    Pos { line, column }
}

#[test]
fn positions_of_keys_and_values() {
    let root = ok("server:\n  port: 8443\n  host: \"1.2.3.4\"\nbackends:\n  - name: a\n  - {name: b}\n");
    assert_eq!(root.pos, at(1, 1));
    let top = entries(&root);
    assert_eq!((top[0].key.as_str(), top[0].key_pos), ("server", at(1, 1)));
    let server = entries(&top[0].value);
    assert_eq!(top[0].value.pos, at(2, 3));
    assert_eq!(server[0].key_pos, at(2, 3));
    assert_eq!(server[0].value, Node { pos: at(2, 9), kind: Kind::Scalar("8443".into()) });
    assert_eq!(server[1].value, Node { pos: at(3, 9), kind: Kind::Scalar("1.2.3.4".into()) });
    let Kind::Seq(items) = &top[1].value.kind else { panic!("not a seq") };
    assert_eq!(top[1].value.pos, at(5, 3));
    assert_eq!(items[0].pos, at(5, 5));
    assert_eq!(items[1].pos, at(6, 5), "a flow mapping starts at its brace");
    assert_eq!(entries(&items[1])[0].value.pos, at(6, 12));
}

#[test]
fn nulls_and_quoted_nulls() {
    let root = ok("a:\nb: ~\nc: null\nd: \"null\"\ne: ''\n");
    let e = entries(&root);
    assert_eq!(e[0].value, Node { pos: at(1, 1), kind: Kind::Null }, "empty value sits at its key");
    assert_eq!(e[1].value.kind, Kind::Null);
    assert_eq!(e[2].value.kind, Kind::Null);
    assert_eq!(e[3].value.kind, Kind::Scalar("null".into()));
    assert_eq!(e[4].value.kind, Kind::Scalar(String::new()));
}

#[test]
fn empty_documents_have_no_root() {
    for text in ["", "# just a comment\n", "---\n"] {
        let (root, errors) = parse(text, "t.yaml");
        assert!(errors.is_empty(), "{text:?}: {errors:?}");
        assert!(root.is_none() || root.unwrap().kind == Kind::Null, "{text:?}");
    }
}

#[test]
fn duplicate_keys_keep_the_first() {
    let text = "server:\n  port: 1\n  host: ::1\n  port: 2\n";
    assert_eq!(errors(text), ["t.yaml:4:3: server.port: duplicate key \"port\" (first defined at line 2)"]);
    let root = parse(text, "t.yaml").0.unwrap();
    let server = entries(&entries(&root)[0].value);
    assert_eq!(server.len(), 2);
    assert_eq!(server[0].value.kind, Kind::Scalar("1".into()));
}

#[test]
fn anchors_aliases_and_tags_are_rejected() {
    let got = errors("a: &x 1\nb: *x\nc: !!str 3\nd:\n  - !custom {k: v}\n");
    assert_eq!(
        got,
        [
            "t.yaml:1:7: a: anchors (`&name`) are not supported; write the value out",
            "t.yaml:2:4: b: aliases (`*name`) are not supported; write the value out",
            "t.yaml:3:10: c: tags (`!!str`) are not supported; remove the tag",
            "t.yaml:5:13: d[0]: tags (`!custom`) are not supported; remove the tag",
        ]
    );
    let root = parse("b: *x\n", "t.yaml").0;
    assert!(root.is_none(), "an undefined alias is a syntax error");
}

#[test]
fn alias_becomes_invalid_node() {
    let (root, errors) = parse("a: &x 1\nb: *x\n", "t.yaml");
    assert_eq!(errors.len(), 2);
    assert_eq!(entries(root.as_ref().unwrap())[1].value.kind, Kind::Invalid);
}

#[test]
fn collection_keys_and_empty_keys() {
    let got = errors("? [a, b]\n: 1\n\"\": 2\nok: 3\n");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("t.yaml:1:3: mapping keys must be plain words"), "{got:?}");
    assert_eq!(got[1], "t.yaml:3:1: empty mapping key");
}

#[test]
fn second_document_is_an_error() {
    let (root, errs) = parse("a: 1\n---\nb: 2\n", "t.yaml");
    let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs, ["t.yaml:2:1: only one YAML document is allowed per file (found a second `---`)"]);
    assert_eq!(entries(&root.unwrap()).len(), 1);
}

#[test]
fn syntax_errors_have_positions() {
    let (root, errs) = parse("server:\n  port: 1\n\thost: x\n", "t.yaml");
    assert!(root.is_none());
    assert_eq!(errs.len(), 1);
    let e = &errs[0];
    assert!(e.message.starts_with("YAML syntax error: "), "{e}");
    assert!(e.message.contains("indent YAML with spaces, not tabs"), "{e}");
    assert_eq!((e.line, e.column), (3, 1), "points at the tab: {e}");

    let errs = errors("a: 'unterminated\nb: 2\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.yaml:1:4: YAML syntax error: "), "{errs:?}");

    let errs = errors("a: [1, 2\n");
    assert!(errs[0].contains("YAML syntax error"), "{errs:?}");
}
