//! Progress: a live bar on a terminal (indicatif), plain lines every few seconds when
//! stderr is not one (a CI log, a pipe). Both show the same numbers: rows answered of all
//! rows, sent, created, rejected, failed, waiting (sent, no reply yet), the answer rate
//! and the ETA (of the rows not answered, sent or not).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::state::Counts;

/// How far back the rate looks.
const WINDOW: Duration = Duration::from_secs(10);

/// The numbers of one progress line, without the rate.
pub fn counts_text(c: &Counts) -> String {
    format!(
        "sent {} · created {} · rejected {} · failed {} · waiting {}",
        c.sent, c.created, c.rejected, c.failed, c.waiting
    )
}

/// Rate and ETA, e.g. `198.4/s · ETA 0:44`; `ETA -` while nothing comes back.
pub fn rate_text(rate: f64, left: usize) -> String {
    if left == 0 {
        return format!("{rate:.1}/s · done");
    }
    if rate <= 0.0 {
        return format!("{rate:.1}/s · ETA -");
    }
    let secs = (left as f64 / rate).ceil() as u64;
    format!("{rate:.1}/s · ETA {}:{:02}", secs / 60, secs % 60)
}

/// A plain progress line, as printed off a terminal.
pub fn line(c: &Counts, rate: f64) -> String {
    format!(
        "onboard-bulk: {}/{} answered · {} · {}",
        c.answered(),
        c.rows,
        counts_text(c),
        rate_text(rate, c.unanswered())
    )
}

/// Answers per second over the recent samples `(when, answered)`.
pub fn rate(samples: &VecDeque<(Instant, usize)>) -> f64 {
    match (samples.front(), samples.back()) {
        (Some((t0, a0)), Some((t1, a1))) if t1 > t0 => {
            a1.saturating_sub(*a0) as f64 / t1.duration_since(*t0).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// Draws progress on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Plain lines: how often, and when the last one was printed.
    every: Duration,
    last_line: Option<Instant>,
    samples: VecDeque<(Instant, usize)>,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines every `every` otherwise;
    /// nothing at all when `quiet`.
    pub fn new(rows: usize, every: Duration, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(rows as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30.green/dim}] {pos}/{len} answered · {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            // The clock and spinner move even while no reply comes.
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Self {
            bar,
            every: if quiet { Duration::MAX } else { every },
            last_line: None,
            samples: VecDeque::new(),
        }
    }

    /// Shows the current counts.
    pub fn update(&mut self, c: &Counts) {
        let now = Instant::now();
        self.samples.push_back((now, c.answered()));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
        let rate = rate(&self.samples);
        if let Some(bar) = &self.bar {
            bar.set_position(c.answered() as u64);
            bar.set_message(format!(
                "{} · {}",
                counts_text(c),
                rate_text(rate, c.unanswered())
            ));
            return;
        }
        let due = self
            .last_line
            .is_none_or(|last| now.duration_since(last) >= self.every);
        if due && self.every != Duration::MAX {
            self.last_line = Some(now);
            eprintln!("{}", line(c, rate));
        }
    }

    /// Leaves the last state on screen (a final plain line off a terminal).
    pub fn finish(&mut self, c: &Counts) {
        if let Some(bar) = &self.bar {
            bar.set_position(c.answered() as u64);
            bar.set_message(counts_text(c));
            bar.abandon();
        } else if self.every != Duration::MAX {
            eprintln!("{}", line(c, rate(&self.samples)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_reads_as_the_bar_does() {
        let c = Counts {
            rows: 100,
            pending: 10,
            waiting: 30,
            sent: 88,
            created: 50,
            rejected: 8,
            failed: 2,
        };
        assert_eq!(
            line(&c, 20.0),
            "onboard-bulk: 60/100 answered · sent 88 · created 50 · rejected 8 · failed 2 · waiting 30 · 20.0/s · ETA 0:02"
        );
        assert_eq!(rate_text(0.0, 5), "0.0/s · ETA -");
        assert_eq!(rate_text(1.0, 125), "1.0/s · ETA 2:05");
        assert_eq!(rate_text(3.0, 0), "3.0/s · done");
    }

    #[test]
    fn the_rate_is_answers_per_second_over_the_window() {
        let t0 = Instant::now();
        let mut samples = VecDeque::new();
        assert_eq!(rate(&samples), 0.0);
        samples.push_back((t0, 100));
        assert_eq!(rate(&samples), 0.0);
        samples.push_back((t0 + Duration::from_secs(2), 500));
        assert!((rate(&samples) - 200.0).abs() < 1e-9);
    }
}
