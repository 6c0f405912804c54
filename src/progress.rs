//! Progress bars for the slow parts of a command — hashing an export,
//! uploading assets, making patches — drawn with indicatif on standard error
//! when it is a terminal, and never when the output is piped, with `--json`
//! or with `--quiet`: a bar made by [`Progress::hidden`] draws nothing.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars are drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    shown: bool,
}

impl Progress {
    /// Bars on standard error when it is a terminal.
    pub fn on_terminal() -> Progress {
        Progress {
            shown: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    /// No bars.
    pub fn hidden() -> Progress {
        Progress { shown: false }
    }

    /// A bar counting `len` items of `what` (hidden when bars are off).
    pub fn items(&self, len: u64, what: &str) -> ProgressBar {
        self.bar(len, what, "{msg:>18} [{bar:32.cyan/blue}] {pos}/{len} ({eta})")
    }

    fn bar(&self, len: u64, what: &str, template: &str) -> ProgressBar {
        if !self.shown || len == 0 {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style);
        bar.set_message(what.to_string());
        bar
    }
}
