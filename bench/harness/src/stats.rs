//! Samples in milliseconds and their percentiles.
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1000.0);
    }

    pub fn push_ms(&mut self, ms: f64) {
        self.0.push(ms);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100); `None` when empty.
    pub fn pct(&self, p: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        let i = rank.clamp(1, v.len()) - 1;
        v.get(i).copied()
    }

    pub fn p50(&self) -> Option<f64> {
        self.pct(50.0)
    }

    pub fn p99(&self) -> Option<f64> {
        self.pct(99.0)
    }

    pub fn max(&self) -> Option<f64> {
        self.pct(100.0)
    }

    pub fn min(&self) -> Option<f64> {
        self.pct(0.0)
    }

    /// Summary object for results.json: n, min, p50, p90, p99, max (ms, 3 decimals).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.len(),
            "min": round(self.min()),
            "p50": round(self.p50()),
            "p90": round(self.pct(90.0)),
            "p99": round(self.p99()),
            "max": round(self.max()),
        })
    }
}

/// Rounds to 3 decimals; keeps `None` as JSON null.
pub fn round(v: Option<f64>) -> Option<f64> {
    v.map(|x| (x * 1000.0).round() / 1000.0)
}

/// `a / b` rounded to 2 decimals, when both exist and `b > 0`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(((a / b) * 100.0).round() / 100.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut s = Samples::default();
        for x in 1..=100 {
            s.push_ms(f64::from(x));
        }
        assert_eq!(s.p50(), Some(50.0));
        assert_eq!(s.p99(), Some(99.0));
        assert_eq!(s.max(), Some(100.0));
        assert_eq!(s.min(), Some(1.0));
        assert_eq!(Samples::default().p50(), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
    }
}
