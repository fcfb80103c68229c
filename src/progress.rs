//! Progress bars for long work. They draw on stderr only when it is a terminal, so scripts,
//! logs and tests see nothing.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar with a count, a rate and an ETA.
pub fn bar(label: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    bar
}

/// A spinner for work of unknown length.
pub fn spinner(label: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_prefix(label);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>12} {spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
