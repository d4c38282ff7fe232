//! Unit tests of the parent module.
use super::*;
use minijinja::context;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn variants_become_separate_prompts_and_inherit() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "s.yaml",
        "name: s\nmessages:\n  - role: user\n    content: 'Review: {{ review }}'\nparams: {max_tokens: 10, temperature: 0.5}\nvariants:\n  zero-shot: {}\n  few-shot:\n    params: {max_tokens: 20}\n    messages:\n      - role: system\n        content: Examples...\n      - role: user\n        content: '{{ review }}'\n",
    );
    let prompts = Prompt::load_file(&path).unwrap();
    let ids: Vec<_> = prompts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["s:few-shot", "s:zero-shot"]);
    assert_eq!(prompts[0].params.max_tokens, Some(20));
    assert_eq!(prompts[0].params.temperature, Some(0.5));
    let rendered = prompts[1].render(&context! { review => "great" }).unwrap();
    assert_eq!(
        rendered,
        RenderedPrompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: "Review: great".into()
        }])
    );
}

#[test]
fn missing_variable_is_an_error_naming_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "p.yaml",
        "name: p\nmessages:\n  - role: system\n    content: hi\n  - role: user\n    content: '{{ text }}'\n",
    );
    let prompt = &Prompt::load_file(&path).unwrap()[0];
    let err = prompt
        .render(&context! { other => 1 })
        .unwrap_err()
        .to_string();
    assert!(err.contains("message 2 (user)"), "{err}");
    assert!(err.contains("undefined variable `text`"), "{err}");
}

#[test]
fn syntax_errors_are_found_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "bad.yaml", "completion: '{{ unclosed'\n");
    let err = Prompt::load_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("completion"), "{err}");
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn unknown_key_and_unknown_role_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "k.yaml", "completion: x\ntemprature: 1\n");
    let err = Prompt::load_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("k.yaml:2:1") && err.contains("temprature"),
        "{err}"
    );
    let path = write(&dir, "r.yaml", "messages:\n  - role: bot\n    content: x\n");
    let err = Prompt::load_file(&path).unwrap_err().to_string();
    assert!(err.contains("unknown role \"bot\""), "{err}");
}

#[test]
fn both_messages_and_completion_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "b.yaml",
        "completion: x\nmessages:\n  - role: user\n    content: y\n",
    );
    let err = Prompt::load_file(&path).unwrap_err().to_string();
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn variables_lists_what_the_templates_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "p.yaml",
        "messages:\n  - role: system\n    content: \"{% if formal %}Be formal.{% endif %}\"\n  - role: user\n    content: \"{{ review }} {% for t in tags %}{{ t }}{% endfor %}\"\n",
    );
    let prompts = Prompt::load_file(&path).unwrap();
    assert_eq!(prompts[0].variables(), ["formal", "review", "tags"]);
}

#[test]
fn agent_prompts_carry_their_tools_into_variants() {
    let text = "name: agent\ntools: [calculator]\nmessages: [{role: user, content: '{{ question }}'}]\nvariants:\n  a: {}\n  b: {tools: [list_images, calculator]}\n";
    let prompts = Prompt::parse_file(std::path::Path::new("prompts/agent.yaml"), text).unwrap();
    assert_eq!(prompts[0].tools, ["calculator"]);
    assert_eq!(prompts[1].tools, ["list_images", "calculator"]);
}
