//! State-machine tests of the screens where the user types: the prompt editor (live
//! preview, template errors, saving, token counts) and the playground.

use crossterm::event::KeyCode;

use super::{app, ctrl, key, press, screen_text};
use crate::tui::app::{Discard, Effect, Event, Popup, Screen};

#[test]
fn editing_keeps_the_text_shows_template_errors_and_saves() {
    let mut app = app((120, 40));
    app.editor.open(1, &app.scan);
    app.screen = Screen::Editor;
    let preview = app.editor.preview.clone().unwrap();
    let text = preview.result.unwrap();
    assert!(
        text.contains("<|im_start|>user\nHello, I am Ada.<|im_end|>"),
        "{text}"
    );
    assert!(text.ends_with("<|im_start|>assistant\n"));
    assert!(preview.context.contains("greetings case ada"));

    // The next case of the eval set; then the warm variant with `formal` set.
    press(&mut app, "c");
    assert!(
        app.editor
            .preview
            .as_ref()
            .unwrap()
            .result
            .as_ref()
            .unwrap()
            .contains("Grace")
    );
    press(&mut app, "v");
    assert!(
        app.editor
            .preview
            .as_ref()
            .unwrap()
            .result
            .as_ref()
            .unwrap()
            .contains("Be formal.")
    );

    // Typing: `q` is text here, not quit. Break the template on the last line.
    press(&mut app, "i");
    assert!(app.editor.editing);
    app.editor
        .textarea
        .move_cursor(tui_textarea::CursorMove::Bottom);
    app.editor
        .textarea
        .move_cursor(tui_textarea::CursorMove::End);
    assert!(press(&mut app, "q {{").is_empty());
    assert!(app.editor.dirty());
    let error = app
        .editor
        .preview
        .as_ref()
        .unwrap()
        .result
        .clone()
        .unwrap_err();
    assert!(error.contains("greet.yaml"), "{error}");
    assert!(error.contains("line"), "{error}");

    let effects = app.update(ctrl('s'));
    let [Effect::Save { path, text }] = &effects[..] else {
        panic!("expected one save, got {effects:?}");
    };
    assert!(path.ends_with("greet.yaml"));
    assert!(text.ends_with("q {{\n"));
    assert_eq!(app.update(Event::Saved(Ok(path.clone()))), [Effect::Rescan]);
    assert!(!app.editor.dirty());
    app.update(key(KeyCode::Esc));
    assert!(!app.editor.editing);
    assert_eq!(press(&mut app, "q"), [Effect::Quit]);
}

#[test]
fn the_preview_asks_once_for_its_token_count_and_shows_it() {
    let mut app = app((120, 40));
    press(&mut app, "j");
    let effects = app.update(key(KeyCode::Enter));
    let [Effect::CountTokens { model, text }] = &effects[..] else {
        panic!("expected a token count request, got {effects:?}");
    };
    assert!(model.ends_with("tiny.gguf"));
    assert!(text.contains("Hello, I am Ada."));
    // Nothing changed: no second request.
    assert!(app.update(Event::Resize(120, 40)).is_empty());
    let text = text.clone();
    app.update(Event::TokenCount {
        text: "an older text".into(),
        count: Ok(3),
    });
    assert_eq!(app.editor.preview.as_ref().unwrap().tokens, None);
    app.update(Event::TokenCount {
        text,
        count: Ok(27),
    });
    assert!(screen_text(&app).contains("27 prompt tokens"));
    // Another case renders another text: counted again.
    let effects = press(&mut app, "c");
    assert!(matches!(&effects[..], [Effect::CountTokens { text, .. }] if text.contains("Grace")));
}

#[test]
fn playground_chats_streams_and_saves_the_exchange_as_a_case() {
    use crate::tui::playground::{ChatEvent, ChatReply};
    let mut app = app((120, 40));
    press(&mut app, "6");
    assert_eq!(app.screen, Screen::Playground);

    // Plain chat: the message goes as typed; `q` while typing is text.
    press(&mut app, "i");
    assert!(app.playground.typing);
    press(&mut app, "quick?");
    let effects = app.update(key(KeyCode::Enter));
    let [
        Effect::Chat {
            model,
            messages,
            params,
            ..
        },
    ] = &effects[..]
    else {
        panic!("expected a chat request, got {effects:?}");
    };
    assert!(model.path.ends_with("tiny.gguf"));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].content, "quick?");
    assert_eq!(params.max_tokens, 128);
    assert!(!app.playground.busy() || app.playground.reply.is_some());
    assert!(app.playground.busy());
    assert_eq!(app.update(ctrl('c')), [Effect::CancelChat]);
    app.update(Event::Chat(ChatEvent::Token("Ye".into())));
    app.update(Event::Chat(ChatEvent::Token("s.".into())));
    assert_eq!(app.playground.reply.as_deref(), Some("Yes."));
    app.update(Event::Chat(ChatEvent::Done(Ok(ChatReply {
        text: "Yes.".into(),
        completion_tokens: 2,
        tokens_per_s: Some(80.0),
    }))));
    assert!(!app.playground.busy());
    assert_eq!(app.playground.turns.len(), 2);

    // Saving needs a prompt with one variable.
    app.update(key(KeyCode::Esc));
    assert!(press(&mut app, "S").is_empty());
    assert!(
        app.playground
            .status
            .as_deref()
            .unwrap()
            .contains("choose a prompt")
    );

    // Through greet:short, the first message fills `name`.
    press(&mut app, "p");
    assert_eq!(app.playground.prompt.as_deref(), Some("greet:short"));
    assert!(app.playground.turns.is_empty());
    press(&mut app, "i");
    press(&mut app, "Ada");
    let effects = app.update(key(KeyCode::Enter));
    let [Effect::Chat { messages, .. }] = &effects[..] else {
        panic!("expected a chat request, got {effects:?}");
    };
    let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user"]);
    assert_eq!(
        app.playground.params.max_tokens, 16,
        "greet's own parameters"
    );
    assert_eq!(messages[1].content, "Hello, I am Ada.");
    app.update(Event::Chat(ChatEvent::Done(Ok(ChatReply {
        text: "Hi Ada!".into(),
        completion_tokens: 3,
        tokens_per_s: None,
    }))));
    app.update(key(KeyCode::Esc));
    let effects = press(&mut app, "S");
    let [Effect::SaveCase { eval_set, case }] = &effects[..] else {
        panic!("expected a save, got {effects:?}");
    };
    assert!(eval_set.ends_with("greetings.yaml"));
    assert_eq!(
        *case,
        serde_json::json!({"id": "playground-4", "vars": {"name": "Ada"}, "expected": "Hi Ada!", "tags": ["playground"]})
    );
    let saved = app.update(Event::CaseSaved(Ok((
        eval_set.clone(),
        "playground-4".into(),
    ))));
    assert_eq!(saved, [Effect::Rescan]);
    assert!(
        app.playground
            .status
            .as_deref()
            .unwrap()
            .contains("eval-sets/greetings.yaml")
    );
}

#[test]
fn playground_parameters_adjust_within_bounds_and_failed_replies_keep_the_message() {
    use crate::tui::playground::ChatEvent;
    let mut app = app((120, 40));
    press(&mut app, "6");
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Left));
    assert_eq!(app.playground.params.temperature, 0.0, "never below 0");
    for _ in 0..3 {
        app.update(key(KeyCode::Right));
    }
    assert!((app.playground.params.temperature - 0.3).abs() < 1e-6);
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Right));
    assert_eq!(app.playground.params.top_p, 1.0);
    app.update(key(KeyCode::Tab));
    press(&mut app, "i");
    press(&mut app, "hello");
    app.update(key(KeyCode::Enter));
    app.update(Event::Chat(ChatEvent::Done(Err("cannot load tiny".into()))));
    assert!(app.playground.turns.is_empty());
    assert_eq!(app.playground.input.lines(), ["hello"]);
    assert!(
        app.playground
            .status
            .as_deref()
            .unwrap()
            .contains("cannot load")
    );
}

/// A remote model (`kind: openai`) has no GGUF header, yet the playground offers it: its
/// server applies the chat template. The request carries the catalog entry.
#[test]
fn the_playground_offers_remote_models() {
    let mut app = app((120, 40));
    let mut remote = super::tiny_model();
    remote.name = "fleet".into();
    remote.entry.settings = promptlab::catalog::KindSettings::Openai {
        servers: serde_json::from_value(serde_json::json!({
            "model": "qwen", "endpoints": ["http://127.0.0.1:9/v1"]
        }))
        .unwrap(),
        params: Default::default(),
    };
    remote.info = Err("remote model".into());
    app.scan.models.push(remote);
    press(&mut app, "6");
    press(&mut app, "m");
    assert!(
        screen_text(&app).contains("Playground · fleet"),
        "{}",
        screen_text(&app)
    );
    press(&mut app, "i");
    press(&mut app, "hi");
    let effects = app.update(key(KeyCode::Enter));
    let [
        Effect::Chat {
            model, model_name, ..
        },
    ] = &effects[..]
    else {
        panic!("expected a chat request, got {effects:?}");
    };
    assert_eq!(model_name, "fleet");
    assert!(model.servers().is_some());
}

/// Saving leaves typing mode, so the guide's "Ctrl-S; `3`, `r`" switches to the run
/// screen instead of typing "3r" into the prompt.
#[test]
fn saving_leaves_typing_mode() {
    let mut app = app((120, 40));
    app.editor.open(1, &app.scan);
    app.screen = Screen::Editor;
    press(&mut app, "i");
    press(&mut app, "x");
    assert!(app.editor.dirty());
    let effects = app.update(ctrl('s'));
    assert!(matches!(&effects[..], [Effect::Save { .. }]), "{effects:?}");
    assert!(!app.editor.editing);
    press(&mut app, "3");
    assert_eq!(app.screen, Screen::Run);
    assert!(!app.editor.text().contains("x3"));
}

/// Typing at the end of a long line scrolls the editor sideways; saving or `Esc` brings
/// every line back into view from its start.
#[test]
fn leaving_typing_mode_scrolls_back_to_the_start_of_the_lines() {
    let mut app = app((80, 24));
    app.editor.open(1, &app.scan);
    app.screen = Screen::Editor;
    let first_line = app
        .editor
        .text()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(!first_line.is_empty());
    press(&mut app, "i");
    app.update(key(KeyCode::End));
    press(
        &mut app,
        " and some more words to make this line far wider than the pane",
    );
    let scrolled = screen_text(&app);
    assert!(
        !scrolled.contains(&first_line),
        "the edit should scroll:\n{scrolled}"
    );
    app.update(ctrl('s'));
    let still = screen_text(&app);
    assert!(still.contains(&first_line), "{still}");
    press(&mut app, "i");
    press(&mut app, "x");
    app.update(key(KeyCode::Esc));
    assert!(screen_text(&app).contains(&first_line));
}

/// Quitting, or opening another prompt from the library, with unsaved edits asks first;
/// any key but `y` keeps the edits.
#[test]
fn unsaved_edits_are_never_dropped_without_asking() {
    let mut app = app((120, 40));
    app.editor.open(1, &app.scan);
    app.screen = Screen::Editor;
    press(&mut app, "i");
    press(&mut app, "x");
    app.update(key(KeyCode::Esc));
    assert!(app.editor.dirty());

    assert!(press(&mut app, "q").is_empty());
    assert_eq!(app.popup, Some(Popup::DiscardEdits(Discard::Quit)));
    let screen = screen_text(&app);
    assert!(screen.contains("unsaved edits"), "{screen}");
    assert!(screen.contains("greet.yaml"), "{screen}");
    assert!(app.update(key(KeyCode::Esc)).is_empty());
    assert_eq!(app.popup, None);
    assert!(app.editor.dirty());

    // Back in the library, Enter on the other prompt asks; `n` stays.
    press(&mut app, "1");
    assert_eq!(app.screen, Screen::Library);
    assert_eq!(app.library.selected, 0);
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert_eq!(
        app.popup,
        Some(Popup::DiscardEdits(Discard::OpenPrompt {
            file: 0,
            external: false
        }))
    );
    press(&mut app, "n");
    assert_eq!(app.editor.file, Some(1));
    assert!(app.editor.dirty());
    // Enter on the prompt being edited goes back to the edits without asking.
    press(&mut app, "j");
    app.update(key(KeyCode::Enter));
    assert_eq!(app.popup, None);
    assert_eq!(app.screen, Screen::Editor);
    assert!(app.editor.dirty());

    // `y` drops them: the other prompt opens, and nothing holds the quit back.
    press(&mut app, "1");
    press(&mut app, "k");
    app.update(key(KeyCode::Enter));
    press(&mut app, "y");
    assert_eq!(app.editor.file, Some(0));
    assert_eq!(app.screen, Screen::Editor);
    assert!(!app.editor.dirty());
    assert_eq!(press(&mut app, "q"), [Effect::Quit]);
}

/// A sent message leaves typing mode: the `i` that starts the next message is not typed.
#[test]
fn sending_a_message_leaves_typing_mode() {
    let mut app = app((120, 40));
    press(&mut app, "6");
    press(&mut app, "i");
    press(&mut app, "Capital of France?");
    let effects = app.update(key(KeyCode::Enter));
    assert!(matches!(&effects[..], [Effect::Chat { .. }]), "{effects:?}");
    assert!(!app.playground.typing);
    app.update(Event::Chat(crate::tui::playground::ChatEvent::Done(Ok(
        crate::tui::playground::ChatReply {
            text: "Paris".into(),
            completion_tokens: 1,
            tokens_per_s: None,
        },
    ))));
    press(&mut app, "i");
    press(&mut app, "And of Italy?");
    assert_eq!(app.playground.input.lines(), ["And of Italy?"]);
}

/// Models this build cannot run now (an unfetched file, a mistral.rs entry without the
/// feature) are not offered by the playground nor picked by `m` in the editor.
#[test]
fn only_models_that_can_run_here_are_offered() {
    let mut app = app((120, 40));
    let mut unfetched = super::tiny_model();
    unfetched.name = "unfetched".into();
    unfetched.entry.path = "/nonexistent/model.gguf".into();
    unfetched.entry.fetch = Some("bash scripts/fetch-models.sh".into());
    unfetched.info = Err("no such file".into());
    app.scan.models.insert(0, unfetched);
    assert_eq!(super::super::playground::chat_models(&app.scan), vec![1]);
    press(&mut app, "6");
    assert!(
        screen_text(&app).contains("Playground · tiny"),
        "{}",
        screen_text(&app)
    );
    press(&mut app, "m");
    assert!(
        !screen_text(&app).contains("unfetched"),
        "{}",
        screen_text(&app)
    );
}
