//! The agent screen: asking a question, the trace arriving step by step, stepping
//! through it, stored questions, cancelling; and its snapshots.

use crossterm::event::KeyCode;
use promptlab::store::AgentRunRow;
use promptlab::trace::{AgentStep, AgentStop, AgentTrace, Convention, StepAction};
use serde_json::json;

use super::{app, ctrl, draw, key, press, screen_text, tiny_model};
use crate::tui::agent::AgentUiEvent;
use crate::tui::app::{App, Effect, Event, Screen};

fn call_step() -> AgentStep {
    AgentStep {
        index: 0,
        reply: "{\"name\": \"detect_objects\", \"arguments\": {\"image\": \"photos/bus.jpg\"}}"
            .into(),
        action: StepAction::ToolCall {
            name: "detect_objects".into(),
            arguments: json!({"image": "photos/bus.jpg"}),
            result: Some(json!({"image": "photos/bus.jpg", "count": 3, "counts": {"person": 3}})),
            error: None,
            tool_ms: 212.0,
        },
        prompt_tokens: 880,
        cached_prompt_tokens: 0,
        generated_tokens: 31,
        generation_ms: 5900.0,
        ttft_ms: 0.0,
    }
}

fn answer_step() -> AgentStep {
    AgentStep {
        index: 1,
        reply: "There are 3 people in photos/bus.jpg.".into(),
        action: StepAction::Answer {
            text: "There are 3 people in photos/bus.jpg.".into(),
        },
        prompt_tokens: 990,
        cached_prompt_tokens: 0,
        generated_tokens: 11,
        generation_ms: 2400.0,
        ttft_ms: 0.0,
    }
}

fn stored_row() -> AgentRunRow {
    AgentRunRow {
        id: 4,
        started_at: "2026-11-28T10:00:00Z".into(),
        model: "tiny".into(),
        question: "What is 12 times 7?".into(),
        status: "answered".into(),
        answer: Some("84".into()),
        steps_json: serde_json::to_string(&[AgentStep {
            index: 0,
            reply: "{\"name\": \"calculator\", \"arguments\": {\"expression\": \"12*7\"}}".into(),
            action: StepAction::ToolCall {
                name: "calculator".into(),
                arguments: json!({"expression": "12*7"}),
                result: None,
                error: Some("calculator: timed out".into()),
                tool_ms: 60000.0,
            },
            prompt_tokens: 700,
            cached_prompt_tokens: 0,
            generated_tokens: 20,
            generation_ms: 3000.0,
            ttft_ms: 0.0,
        }])
        .unwrap(),
        total_ms: Some(3100.0),
        generated_tokens: 20,
    }
}

/// The agent screen with a question asked and its first step in.
fn asked(size: (u16, u16)) -> App {
    let mut app = app(size);
    assert_eq!(press(&mut app, "9"), vec![Effect::ListAgentRuns]);
    assert_eq!(app.screen, Screen::Agent);
    app.update(Event::AgentRunsListed(Ok(vec![stored_row()])));
    press(&mut app, "i");
    press(&mut app, "How many people are in photos/bus.jpg?");
    let effects = app.update(key(KeyCode::Enter));
    assert_eq!(
        effects,
        vec![Effect::AskAgent {
            model_name: "tiny".into(),
            question: "How many people are in photos/bus.jpg?".into(),
            prompt: None,
        }]
    );
    app.update(Event::Agent(AgentUiEvent::Started {
        run_id: Some(5),
        tools: vec!["detect_objects".into(), "calculator".into()],
        left_out: vec![(
            "classify_digit".into(),
            "`digits` is not trained yet".into(),
        )],
    }));
    app.update(Event::Agent(AgentUiEvent::Step(call_step())));
    app.update(Event::Agent(AgentUiEvent::Token("There are".into())));
    app
}

#[test]
fn a_question_streams_its_trace_and_lands_in_the_store_list() {
    let mut app = asked((120, 40));
    assert!(app.agent.running);
    let text = screen_text(&app);
    assert!(text.contains("step 1 · call detect_objects"), "{text}");
    assert!(text.contains("\"person\": 3"), "{text}");
    assert!(text.contains("step 2 · generating…"), "{text}");
    assert!(text.contains("left out: classify_digit"), "{text}");
    // Keys other than typing keys do not start a second question while one runs.
    assert_eq!(app.update(key(KeyCode::Enter)), Vec::new());
    app.agent.typing = false;
    // Ctrl-C and `c` cancel the question, not the app.
    assert_eq!(app.update(ctrl('c')), vec![Effect::CancelAgent]);
    assert_eq!(press(&mut app, "c"), vec![Effect::CancelAgent]);

    app.update(Event::Agent(AgentUiEvent::Step(answer_step())));
    let effects = app.update(Event::Agent(AgentUiEvent::Done(Ok(AgentTrace {
        question: "How many people are in photos/bus.jpg?".into(),
        convention: Convention::Hermes,
        tools: vec!["detect_objects".into()],
        steps: vec![call_step(), answer_step()],
        answer: Some("There are 3 people in photos/bus.jpg.".into()),
        stop: AgentStop::Answered,
        error: None,
        total_ms: 8600.0,
    }))));
    assert_eq!(effects, vec![Effect::ListAgentRuns]);
    assert!(!app.agent.running);
    let text = screen_text(&app);
    assert!(
        text.contains("answer: There are 3 people in photos/bus.jpg."),
        "{text}"
    );
    assert!(
        text.contains("2 steps · 42 tokens · 8.6 s · agent run 5"),
        "{text}"
    );
}

#[test]
fn steps_open_one_at_a_time_and_stored_questions_show_their_errors() {
    let mut app = asked((120, 40));
    app.update(Event::Agent(AgentUiEvent::Step(answer_step())));
    app.update(Event::Agent(AgentUiEvent::Done(Err(
        "cannot load tiny: bad file".into(),
    ))));
    assert_eq!(app.agent.runs[0].status, "failed");
    assert!(screen_text(&app).contains("cannot load tiny: bad file"));

    // The last step is open; ← opens the call with its result.
    assert!(screen_text(&app).contains("reply: There are 3 people"));
    app.update(key(KeyCode::Left));
    let text = screen_text(&app);
    assert!(
        text.contains("arguments: {\"image\":\"photos/bus.jpg\"}"),
        "{text}"
    );
    assert!(text.contains("tool 212 ms"), "{text}");
    app.update(key(KeyCode::Right));
    assert_eq!(app.agent.step, None);

    // The stored question below: its tool error shows in full.
    app.update(key(KeyCode::Down));
    let text = screen_text(&app);
    assert!(text.contains("question: What is 12 times 7?"), "{text}");
    assert!(text.contains("error: calculator: timed out"), "{text}");
    assert!(text.contains("answer: 84"), "{text}");
    assert_eq!(press(&mut app, "r"), vec![Effect::ListAgentRuns]);
}

#[test]
fn a_question_left_running_in_the_store_reads_as_unfinished() {
    let mut app = app((120, 40));
    press(&mut app, "9");
    let mut row = stored_row();
    row.status = "running".into();
    row.answer = None;
    app.update(Event::AgentRunsListed(Ok(vec![row])));
    assert_eq!(app.agent.runs[0].status, "unfinished");
    assert!(!app.agent.running);
    assert!(screen_text(&app).contains("no answer (unfinished)"));
}

#[test]
fn snapshots_of_the_agent_screen() {
    for size in [(120, 40), (80, 24)] {
        let app = asked(size);
        insta::assert_snapshot!(format!("agent_{}x{}", size.0, size.1), draw(&app).backend());
    }
}

/// An embedding model (for the `similar` assertion) is not offered as a column to run.
#[test]
fn the_run_screen_leaves_embedding_models_out() {
    let mut scan = promptlab::project::scan(&super::fixture_root());
    let mut minilm = tiny_model();
    minilm.name = "minilm".into();
    minilm.entry.settings = promptlab::catalog::KindSettings::Embedding;
    scan.models = vec![tiny_model(), minilm];
    let run = crate::tui::run_screen::RunState::new(&scan);
    let names: Vec<&str> = run.models.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["tiny", "echo"]);
}

/// `p` cycles the built-in prompt and the project's agent prompts (those with `tools:`);
/// a question goes out through the one shown.
#[test]
fn p_picks_the_agent_prompt_a_question_is_asked_through() {
    let mut app = app((140, 40));
    let file = app
        .scan
        .prompts
        .iter_mut()
        .find_map(|f| f.prompts.as_mut().ok())
        .unwrap();
    let mut agent_prompt = file[0].clone();
    agent_prompt.id = "helper:direct".into();
    agent_prompt.tools = vec!["calculator".into()];
    file.push(agent_prompt.clone());
    press(&mut app, "9");
    assert!(screen_text(&app).contains("p: prompt (built-in)"));
    press(&mut app, "p");
    assert!(screen_text(&app).contains("p: prompt (helper:direct)"));
    press(&mut app, "p");
    assert_eq!(app.agent.prompt, None);
    press(&mut app, "pi");
    press(&mut app, "What is 2 + 2?");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        vec![Effect::AskAgent {
            model_name: "tiny".into(),
            question: "What is 2 + 2?".into(),
            prompt: Some(agent_prompt),
        }]
    );
}

/// Remote (`kind: openai`) models are offered beside local chat models: their servers
/// apply the template and parse the calls.
#[test]
fn m_offers_remote_models_too() {
    let mut app = app((140, 40));
    let mut remote = tiny_model();
    remote.name = "fleet".into();
    remote.entry.settings = promptlab::catalog::KindSettings::Openai {
        servers: promptlab::catalog::remote::RemoteSettings::single(
            "qwen",
            "http://127.0.0.1:9/v1",
        ),
        params: Default::default(),
    };
    remote.info = Err("remote model".into());
    app.scan.models.push(remote);
    press(&mut app, "9");
    assert!(screen_text(&app).contains("m: model (tiny)"));
    press(&mut app, "m");
    assert!(screen_text(&app).contains("m: model (fleet)"));
    press(&mut app, "i");
    press(&mut app, "What is 2 + 2?");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        vec![Effect::AskAgent {
            model_name: "fleet".into(),
            question: "What is 2 + 2?".into(),
            prompt: None,
        }]
    );
}

/// An agent eval set is listed in the library after the prompt eval sets; Enter sets up
/// its run with language models only (no echo) and agent prompts only, and a run may go
/// without a prompt (the built-in system prompt).
#[test]
fn an_agent_set_runs_from_the_library() {
    use promptlab::evalset::agent::AgentEvalSet;
    use promptlab::project::AgentSetFile;

    let mut app = app((120, 40));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(
        &path,
        "kind: agent\nname: tool-questions\nmodels: [tiny]\ncases:\n  - id: sum\n    question: What is 2+3?\n    assert: [{type: tool-called, value: calculator}]\n",
    )
    .unwrap();
    app.scan.agent_sets.push(AgentSetFile {
        set: AgentEvalSet::load(&path).map_err(|e| e.to_string()),
        path: path.clone(),
    });
    let position = crate::tui::library::items(&app.scan)
        .iter()
        .position(|item| *item == crate::tui::library::Item::AgentSet(0))
        .unwrap();
    app.library.selected = position;
    let library = screen_text(&app);
    assert!(library.contains("Agent sets (1)"), "{library}");
    assert!(library.contains("What is 2+3?"), "{library}");

    app.update(key(KeyCode::Enter));
    assert_eq!(app.screen, Screen::Run);
    let run_screen = screen_text(&app);
    assert!(
        run_screen.contains("tool-questions (agent, 1 questions)")
            && run_screen.contains("Agent prompts (optional)")
            && run_screen.contains("with no prompt ticked, questions open with the built-in"),
        "{run_screen}"
    );
    // The fixture's prompts have no `tools:`, so none is offered.
    assert!(app.run.prompts.is_empty(), "{:?}", app.run.prompts);
    assert_eq!(app.run.models, [("tiny".to_string(), true)]);
    let effects = press(&mut app, "r");
    let [Effect::StartRun(request)] = &effects[..] else {
        panic!("expected a run, got {effects:?}");
    };
    assert!(request.agent);
    assert_eq!(request.eval_set, path);
    assert!(request.prompts.is_empty());
    assert_eq!(request.models, ["tiny"]);
}

/// A tool call on an image shows the image beside the trace, with the boxes the
/// detector found drawn in red.
#[test]
fn a_detection_step_shows_its_picture_with_the_found_boxes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    image::RgbImage::from_pixel(400, 300, image::Rgb([240, 240, 240]))
        .save(dir.path().join("photos/bus.jpg"))
        .unwrap();
    let mut app = asked((140, 40));
    app.scan.root = dir.path().to_path_buf();
    let mut step = call_step();
    if let StepAction::ToolCall { result, .. } = &mut step.action {
        *result = Some(json!({"image": "photos/bus.jpg", "count": 1,
            "objects": [{"label": "person", "confidence": 0.9, "box": [20, 20, 380, 280]}]}));
    }
    app.update(Event::Agent(AgentUiEvent::Step(step)));
    let red = ratatui::style::Color::Rgb(230, 40, 40);
    let terminal = draw(&app);
    let boxed = terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .filter(|c| c.fg == red || c.bg == red)
        .count();
    assert!(boxed >= 20, "{boxed} cells show the found box");
    // The trace text still shows beside it.
    assert!(screen_text(&app).contains("call detect_objects"));
}
