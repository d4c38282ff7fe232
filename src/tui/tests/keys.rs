//! The key map as the user meets it: each screen's key bar, and the help overlay.

use crossterm::event::KeyCode;

use super::{app, key, press, screen_text};
use crate::tui::app::Screen;

/// Every screen has a key bar from the key map, shown whenever there is no message;
/// a message gives way to the next screen's bar.
#[test]
fn every_screen_shows_its_key_bar_until_a_message_comes() {
    for binding in crate::tui::help::KEYMAP {
        assert!(
            binding.screen == "all" || Screen::ALL.iter().any(|s| s.title() == binding.screen),
            "the key map names a screen that does not exist: {}",
            binding.screen
        );
    }
    let mut app = app((200, 60));
    for screen in Screen::ALL {
        let bar = crate::tui::help::key_bar(screen.title());
        assert!(!bar.is_empty(), "{} has no key bar", screen.title());
        app.open(screen);
        let text = screen_text(&app);
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.contains(bar.split(" · ").next().unwrap_or_default()),
            "{}: {last}",
            screen.title()
        );
    }
    app.open(Screen::Library);
    app.message = Some("saved prompts/x.yaml".into());
    let last = screen_text(&app)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("saved prompts/x.yaml"), "{last}");
    app.open(Screen::History);
    assert_eq!(app.message, None);
    let last = screen_text(&app)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("Enter open · Space mark"), "{last}");
}

#[test]
fn help_overlay_swallows_keys_until_closed() {
    let mut app = app((120, 40));
    press(&mut app, "?");
    assert!(app.help);
    assert!(press(&mut app, "4").is_empty());
    assert_eq!(app.screen, Screen::Library);
    app.update(key(KeyCode::Esc));
    assert!(!app.help);
}

/// At 80×24 the key map does not fit: the overlay scrolls to every binding and no further.
#[test]
fn help_overlay_scrolls_through_every_binding() {
    let mut app = app((80, 24));
    press(&mut app, "?");
    let total = crate::tui::help::KEYMAP.len();
    let first_page = screen_text(&app);
    assert!(
        first_page.contains(&format!("Keys 1–19 of {total}")),
        "{first_page}"
    );
    // The last binding is not on the first page; the end of the list is.
    let last = crate::tui::help::KEYMAP.last().unwrap().action;
    assert!(!first_page.contains(last), "{first_page}");
    press(&mut app, "G");
    let end = screen_text(&app);
    assert!(end.contains(last), "{end}");
    assert!(end.contains(&format!("of {total}")), "{end}");
    let limit = app.help_scroll;
    assert_eq!(limit, total - 19);
    // Further down stays on the last page; up and Home go back.
    app.update(key(KeyCode::PageDown));
    press(&mut app, "j");
    assert_eq!(app.help_scroll, limit);
    press(&mut app, "k");
    assert_eq!(app.help_scroll, limit - 1);
    app.update(key(KeyCode::Home));
    assert_eq!(screen_text(&app), first_page);
    // Closing and opening again starts at the top.
    press(&mut app, "G?");
    press(&mut app, "?");
    assert_eq!(app.help_scroll, 0);
    // A tall screen shows every binding at once and does not scroll.
    let mut tall = self::app((120, 80));
    press(&mut tall, "?G");
    assert_eq!(tall.help_scroll, 0);
    assert!(screen_text(&tall).contains("Keys (? or Esc closes)"));
}
