//! `time_window(start, end, timezone)`: a route served only between two times of day.
//!
//! Times are `HH:MM` on the wall clock of an IANA time zone (`Europe/Paris`, `UTC`), looked up
//! once when the policy is built: the system's zone files when present, else the copy of the
//! time-zone database built into Rampart. A window whose end is before its start runs past
//! midnight (`22:00`–`06:00`). The start minute is inside the window, the end minute is not.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A daily window of wall-clock time.
#[derive(Debug, Clone)]
pub struct TimeWindow {
    /// Minutes after midnight.
    start: u16,
    end: u16,
    tz: TimeZone,
    /// `09:00-17:00 Europe/Paris`, for events.
    label: String,
}

impl TimeWindow {
    /// Builds a window from `HH:MM` strings and a zone name.
    ///
    /// # Errors
    /// Each bad part, as `(field, message)`.
    pub fn new(
        start: &str,
        end: &str,
        timezone: &str,
    ) -> Result<TimeWindow, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let s = minutes(start).map_err(|m| errors.push(("start", m))).ok();
        let e = minutes(end).map_err(|m| errors.push(("end", m))).ok();
        let tz = TimeZone::get(timezone.trim()).ok();
        if tz.is_none() {
            errors.push((
                "timezone",
                format!("'{timezone}' is not a known IANA time zone (e.g. 'UTC', 'Europe/Paris')"),
            ));
        }
        if let (Some(s), Some(e)) = (s, e) {
            if s == e {
                errors.push((
                    "end",
                    format!("'{end}' is the same as the start: the window would be empty"),
                ));
            }
        }
        match (s, e, tz) {
            (Some(start), Some(end), Some(tz)) if errors.is_empty() => Ok(TimeWindow {
                start,
                end,
                tz,
                label: format!("{}-{} {}", hhmm(start), hhmm(end), timezone.trim()),
            }),
            _ => Err(errors),
        }
    }

    /// Whether the instant `now_ms` (ms since the epoch) falls inside the window.
    #[must_use]
    pub fn contains(&self, now_ms: u64) -> bool {
        let minute = i64::try_from(now_ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map(|ts| {
                let dt = ts.to_zoned(self.tz.clone()).datetime();
                u16::try_from(i32::from(dt.hour()) * 60 + i32::from(dt.minute())).unwrap_or(0)
            });
        // An instant outside what the calendar can show cannot be placed: outside.
        let Some(m) = minute else {
            return false;
        };
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }

    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// `HH:MM` (24-hour, one or two digits for the hour) as minutes after midnight; `24:00` is not
/// a time of day.
fn minutes(s: &str) -> Result<u16, String> {
    let bad = || format!("'{s}' is not a time of day as HH:MM (00:00 to 23:59)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits = |t: &str, max: u16, len: std::ops::RangeInclusive<usize>| {
        if len.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse::<u16>().ok().filter(|v| *v <= max)
        } else {
            None
        }
    };
    match (digits(h, 23, 1..=2), digits(m, 59, 2..=2)) {
        (Some(h), Some(m)) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-15 (winter) and 2026-07-15 (summer), at `h:m` UTC, in ms.
    fn utc(day: &str, h: u32, m: u32) -> u64 {
        let ts: Timestamp = format!("{day}T{h:02}:{m:02}:00Z")
            .parse()
            .expect("timestamp");
        u64::try_from(ts.as_millisecond()).expect("after 1970")
    }

    #[test]
    fn plain_window_includes_start_excludes_end() {
        let w = TimeWindow::new("09:00", "17:00", "UTC").expect("valid");
        assert!(!w.contains(utc("2026-01-15", 8, 59)));
        assert!(w.contains(utc("2026-01-15", 9, 0)));
        assert!(w.contains(utc("2026-01-15", 16, 59)));
        assert!(!w.contains(utc("2026-01-15", 17, 0)));
    }

    #[test]
    fn overnight_window_wraps_midnight() {
        let w = TimeWindow::new("22:00", "6:00", "UTC").expect("valid");
        assert!(w.contains(utc("2026-01-15", 23, 30)));
        assert!(w.contains(utc("2026-01-15", 0, 0)));
        assert!(w.contains(utc("2026-01-15", 5, 59)));
        assert!(!w.contains(utc("2026-01-15", 6, 0)));
        assert!(!w.contains(utc("2026-01-15", 12, 0)));
        assert!(!w.contains(utc("2026-01-15", 21, 59)));
    }

    #[test]
    fn zone_offsets_and_daylight_saving() {
        // New York is UTC-5 in January and UTC-4 in July.
        let w = TimeWindow::new("09:00", "17:00", "America/New_York").expect("valid");
        assert!(w.contains(utc("2026-01-15", 14, 0)));
        assert!(!w.contains(utc("2026-01-15", 13, 59)));
        assert!(w.contains(utc("2026-07-15", 13, 0)));
        assert!(!w.contains(utc("2026-07-15", 21, 0)));
        // Tokyo (UTC+9): 23:00 UTC is 08:00 the next day there.
        let t = TimeWindow::new("07:00", "09:00", "Asia/Tokyo").expect("valid");
        assert!(t.contains(utc("2026-01-15", 23, 0)));
    }

    #[test]
    fn bad_parts_are_all_named() {
        let errs = TimeWindow::new("25:00", "9am", "Mars/Olympus").expect_err("invalid");
        let fields: Vec<&str> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["start", "end", "timezone"]);
        assert!(TimeWindow::new("10:00", "10:00", "UTC").is_err());
        assert!(TimeWindow::new("10:0", "11:00", "UTC").is_err());
    }
}
