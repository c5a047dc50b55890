//! The progress line of long runs: rewritten in place on a terminal, cleared at the end, and
//! silent when nobody watches (a pipe, a log).

use std::time::Duration;

use tessera_cli::commands::Progress;

#[test]
fn a_progress_line_is_rewritten_in_place_and_cleared() {
    let mut p = Progress::new(Vec::new(), true, Duration::ZERO);
    p.update(1, 4);
    p.update(2, 3);
    p.finish();
    let text = String::from_utf8(p.into_inner()).unwrap();
    let lines: Vec<&str> = text.split('\r').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    assert!(
        lines[0].starts_with("\x1b[2K1 deliveries, 4 events queued, "),
        "{text:?}"
    );
    assert!(
        lines[1].starts_with("\x1b[2K2 deliveries, 3 events queued, "),
        "{text:?}"
    );
    assert_eq!(lines[2], "\x1b[2K");
    assert!(!text.contains('\n'));
}

#[test]
fn updates_are_throttled_and_silent_off_a_terminal() {
    let mut p = Progress::new(Vec::new(), true, Duration::from_secs(3600));
    for n in 0..1000 {
        p.update(n, 0);
    }
    let text = String::from_utf8(p.into_inner()).unwrap();
    assert_eq!(text.matches("deliveries").count(), 1, "{text:?}");

    let mut p = Progress::new(Vec::new(), false, Duration::ZERO);
    p.update(1, 1);
    p.finish();
    assert!(p.into_inner().is_empty());
}
