//! Recurrence expansion shared by Google (`RRULE`/`EXRULE`/`RDATE`/`EXDATE` lines) and Graph
//! (pattern + range objects, converted to an RRULE first): occurrences in ascending order,
//! computed lazily so callers stop at their window edge.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::RRuleSet;

use crate::google::resolve_local;

/// Hard stop for one expansion without an upper bound (`singleEvents=true` without
/// `timeMax`, an incremental page touching an endless series). Documented sandbox limit.
pub(crate) const MAX_EXPANSION: usize = 1000;

/// How many occurrences [`Series::occurrences_from`] walks past before giving up: rrule has
/// no seek, so reaching a window walks from the series start. A daily series from 1970 to
/// 2100 is about 47,500 steps; an hourly one for 100 years about 876,000.
pub(crate) const MAX_SKIP: usize = 2_000_000;

/// One occurrence's original start: a date for all-day series, else an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub(crate) enum Occ {
    Date(NaiveDate),
    At(DateTime<Utc>),
}

impl Occ {
    /// Epoch ms of the occurrence start; dates begin at midnight in `tz`.
    pub(crate) fn key(&self, tz: Tz) -> i64 {
        match self {
            Occ::At(t) => t.timestamp_millis(),
            Occ::Date(d) => resolve_local(d.and_hms_opt(0, 0, 0).expect("midnight"), tz).timestamp_millis(),
        }
    }

    /// `20240105T150000Z` or `20240105`: Google's instance id suffix.
    pub(crate) fn stamp(&self) -> String {
        match self {
            Occ::At(t) => t.format("%Y%m%dT%H%M%SZ").to_string(),
            Occ::Date(d) => d.format("%Y%m%d").to_string(),
        }
    }

    pub(crate) fn parse_stamp(s: &str) -> Option<Occ> {
        if s.len() == 8 {
            return NaiveDate::parse_from_str(s, "%Y%m%d").ok().map(Occ::Date);
        }
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok().map(|n| Occ::At(n.and_utc()))
    }
}

/// Where a series starts: a date (all-day) or a wall-clock time in an IANA zone, which is
/// what keeps 10:00 at 10:00 across DST.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Anchor {
    Date(NaiveDate),
    Local(NaiveDateTime, Tz),
}

impl Anchor {
    fn first(&self) -> Occ {
        match *self {
            Anchor::Date(d) => Occ::Date(d),
            Anchor::Local(n, tz) => Occ::At(resolve_local(n, tz)),
        }
    }
}

pub(crate) struct Series {
    anchor: Anchor,
    set: Option<RRuleSet>,
    /// RDATEs plus DTSTART itself (RFC 5545: DTSTART is always the first instance), sorted.
    rdates: Vec<Occ>,
    exdates: HashSet<Occ>,
}

impl Series {
    /// Parses Google `recurrence[]` lines. Errors are short reasons for a 400.
    pub(crate) fn parse(lines: &[String], anchor: Anchor) -> Result<Series, String> {
        Self::parse_with(lines, anchor, true)
    }

    /// `include_anchor`: RFC 5545 (Google) counts DTSTART as an instance even when the rule
    /// does not match it; Graph starts at the first date matching the pattern.
    pub(crate) fn parse_with(lines: &[String], anchor: Anchor, include_anchor: bool) -> Result<Series, String> {
        let mut rules = Vec::new();
        let mut rdates = if include_anchor { vec![anchor.first()] } else { Vec::new() };
        let mut exdates = HashSet::new();
        for line in lines {
            let (name, _) = line.split_once([':', ';']).ok_or_else(|| format!("bad recurrence line {line}"))?;
            // Parameters and value, starting at the `;` or `:` after the name.
            let rest = &line[name.len()..];
            match name.to_ascii_uppercase().as_str() {
                "RRULE" | "EXRULE" => {
                    let body = line[name.len() + 1..].to_owned();
                    if body.to_ascii_uppercase().contains("DTSTART") {
                        return Err("DTSTART is not allowed in recurrence".into());
                    }
                    rules.push((name.to_ascii_uppercase(), normalize_rule(&body, anchor)));
                }
                "RDATE" => rdates.extend(parse_dates(rest, line, anchor)?),
                "EXDATE" => exdates.extend(parse_dates(rest, line, anchor)?),
                _ => return Err(format!("unsupported recurrence line {line}")),
            }
        }
        if !rules.iter().any(|(n, _)| n == "RRULE") && rdates.len() <= usize::from(include_anchor) {
            return Err("a recurrence needs an RRULE or RDATE".into());
        }
        let set = if rules.is_empty() {
            None
        } else {
            let mut text = dtstart_line(anchor);
            for (n, body) in &rules {
                text.push('\n');
                text.push_str(&format!("{n}:{body}"));
            }
            Some(text.parse::<RRuleSet>().map_err(|e| e.to_string())?)
        };
        rdates.sort();
        rdates.dedup();
        Ok(Series { anchor, set, rdates, exdates })
    }

    /// Occurrences in ascending order (unbounded for endless rules: callers stop).
    pub(crate) fn occurrences(&self) -> impl Iterator<Item = Occ> + '_ {
        let all_day = matches!(self.anchor, Anchor::Date(_));
        let mut rule_iter = self.set.as_ref().map(|s| {
            s.into_iter().map(move |t| if all_day { Occ::Date(t.date_naive()) } else { Occ::At(t.with_timezone(&Utc)) })
        });
        let mut next_rule = rule_iter.as_mut().and_then(Iterator::next);
        let mut rd = self.rdates.iter().copied().peekable();
        let mut last: Option<Occ> = None;
        std::iter::from_fn(move || {
            loop {
                let pick = match (next_rule, rd.peek().copied()) {
                    (None, None) => return None,
                    (Some(r), Some(d)) if d < r => {
                        rd.next();
                        d
                    }
                    (Some(r), _) => {
                        next_rule = rule_iter.as_mut().and_then(Iterator::next);
                        r
                    }
                    (None, Some(d)) => {
                        rd.next();
                        d
                    }
                };
                if last == Some(pick) || self.exdates.contains(&pick) {
                    continue;
                }
                last = Some(pick);
                return Some(pick);
            }
        })
    }

    /// Occurrences whose start (epoch ms, dates at midnight in `tz`) is at or after
    /// `min_ms`, ascending: the way to reach a window of a series that began long ago.
    /// Pass the window start minus the event's duration to also catch occurrences that began
    /// before the window and still overlap it.
    pub(crate) fn occurrences_from(&self, min_ms: i64, tz: Tz) -> impl Iterator<Item = Occ> + '_ {
        let mut it = self.occurrences();
        let mut first = None;
        for _ in 0..MAX_SKIP {
            match it.next() {
                Some(o) if o.key(tz) >= min_ms => {
                    first = Some(o);
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        let rest = first.is_some();
        first.into_iter().chain(it.take_while(move |_| rest))
    }

    /// Whether `occ` is one of the series' occurrences.
    pub(crate) fn contains(&self, occ: Occ) -> bool {
        self.occurrences().take_while(|o| *o <= occ).take(100_000).any(|o| o == occ)
    }

    /// The last occurrence, if the series ends (within `MAX_EXPANSION * 10` instances).
    pub(crate) fn last(&self) -> Option<Occ> {
        let mut it = self.occurrences();
        let mut last = None;
        for _ in 0..MAX_EXPANSION * 10 {
            match it.next() {
                Some(o) => last = Some(o),
                None => return last,
            }
        }
        None
    }
}

/// An `RDATE`/`EXDATE` line keeping only the values `keep` accepts (`None` when none is
/// left); any other line unchanged.
pub(crate) fn retain_dates(line: &str, anchor: Anchor, keep: impl Fn(Occ) -> bool) -> Option<String> {
    let Some((name, _)) = line.split_once([':', ';']) else { return Some(line.to_owned()) };
    if !matches!(name.to_ascii_uppercase().as_str(), "RDATE" | "EXDATE") {
        return Some(line.to_owned());
    }
    let Some((head, values)) = line.rsplit_once(':') else { return Some(line.to_owned()) };
    let params = &head[name.len()..];
    let kept: Vec<&str> = values
        .split(',')
        .filter(|v| {
            parse_dates(&format!("{params}:{v}"), line, anchor).ok().and_then(|o| o.first().copied()).is_none_or(&keep)
        })
        .collect();
    (!kept.is_empty()).then(|| format!("{head}:{}", kept.join(",")))
}

fn dtstart_line(anchor: Anchor) -> String {
    match anchor {
        Anchor::Date(d) => format!("DTSTART:{}T000000Z", d.format("%Y%m%d")),
        Anchor::Local(n, tz) => format!("DTSTART;TZID={}:{}", tz.name(), n.format("%Y%m%dT%H%M%S")),
    }
}

/// All-day rules express `UNTIL` as a date; the expansion runs on UTC midnights, so the
/// date becomes that midnight.
fn normalize_rule(body: &str, anchor: Anchor) -> String {
    body.split(';')
        .map(|part| match part.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") && v.len() == 8 => match anchor {
                Anchor::Date(_) => format!("UNTIL={v}T000000Z"),
                Anchor::Local(_, tz) => NaiveDate::parse_from_str(v, "%Y%m%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(23, 59, 59))
                    .map(|n| format!("UNTIL={}", resolve_local(n, tz).format("%Y%m%dT%H%M%SZ")))
                    .unwrap_or_else(|| part.to_owned()),
            },
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `;TZID=Europe/Zurich:20240112T100000,…`, `:20240112T090000Z`, `;VALUE=DATE:20240112`.
fn parse_dates(rest: &str, line: &str, anchor: Anchor) -> Result<Vec<Occ>, String> {
    let (params, values) = rest.rsplit_once(':').ok_or_else(|| format!("bad date line {line}"))?;
    let mut tz = match anchor {
        Anchor::Local(_, tz) => tz,
        Anchor::Date(_) => Tz::UTC,
    };
    for p in params.split(';') {
        if let Some(name) = p.strip_prefix("TZID=") {
            tz = name.parse().map_err(|_| format!("unknown TZID in {line}"))?;
        }
    }
    values
        .split(',')
        .map(|v| {
            let occ = if v.len() == 8 {
                NaiveDate::parse_from_str(v, "%Y%m%d").ok().map(Occ::Date)
            } else if let Some(u) = v.strip_suffix('Z') {
                NaiveDateTime::parse_from_str(u, "%Y%m%dT%H%M%S").ok().map(|n| Occ::At(Utc.from_utc_datetime(&n)))
            } else {
                NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok().map(|n| Occ::At(resolve_local(n, tz)))
            };
            let occ = occ.ok_or_else(|| format!("bad date {v} in {line}"))?;
            // Match the series' kind: a timed value on an all-day series names its date,
            // a date on a timed series names the wall-clock start on that day.
            Ok(match (anchor, occ) {
                (Anchor::Date(_), Occ::At(t)) => Occ::Date(t.date_naive()),
                (Anchor::Local(n, tz), Occ::Date(d)) => Occ::At(resolve_local(d.and_time(n.time()), tz)),
                (_, o) => o,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn weekly_rule_keeps_wall_clock_across_dst() {
        let tz: Tz = "Europe/Zurich".parse().unwrap();
        let s = Series::parse(&["RRULE:FREQ=WEEKLY;COUNT=3".into()], Anchor::Local(local("2024-03-24T10:00:00"), tz))
            .unwrap();
        let v: Vec<_> = s.occurrences().map(|o| o.stamp()).collect();
        // 09:00Z before the switch on 31 March, 08:00Z after.
        assert_eq!(v, ["20240324T090000Z", "20240331T080000Z", "20240407T080000Z"]);
    }

    #[test]
    fn exdate_and_rdate_apply_and_dtstart_counts() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let s = Series::parse(
            &[
                "RRULE:FREQ=DAILY;COUNT=3".into(),
                "EXDATE;TZID=America/New_York:20240102T090000".into(),
                "RDATE:20240110T140000Z".into(),
            ],
            Anchor::Local(local("2024-01-01T09:00:00"), tz),
        )
        .unwrap();
        let v: Vec<_> = s.occurrences().map(|o| o.stamp()).collect();
        assert_eq!(v, ["20240101T140000Z", "20240103T140000Z", "20240110T140000Z"]);
        assert!(s.contains(Occ::parse_stamp("20240103T140000Z").unwrap()));
        assert!(!s.contains(Occ::parse_stamp("20240102T140000Z").unwrap()));
    }

    #[test]
    fn all_day_until_is_inclusive_date() {
        let s = Series::parse(
            &["RRULE:FREQ=DAILY;UNTIL=20240103".into()],
            Anchor::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
        )
        .unwrap();
        let v: Vec<_> = s.occurrences().map(|o| o.stamp()).collect();
        assert_eq!(v, ["20240101", "20240102", "20240103"]);
        assert!(s.last().is_some());
    }

    #[test]
    fn occurrences_from_reaches_a_window_years_after_the_start() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let s = Series::parse(&["RRULE:FREQ=DAILY".into()], Anchor::Local(local("2020-01-01T09:00:00"), tz)).unwrap();
        let from = local("2026-11-02T00:00:00").and_utc().timestamp_millis();
        let v: Vec<_> = s.occurrences_from(from, tz).take(2).map(|o| o.stamp()).collect();
        assert_eq!(v, ["20261102T080000Z", "20261103T080000Z"]);
        let ended =
            Series::parse(&["RRULE:FREQ=DAILY;COUNT=3".into()], Anchor::Local(local("2020-01-01T09:00:00"), tz))
                .unwrap();
        assert_eq!(ended.occurrences_from(from, tz).count(), 0);
    }

    #[test]
    fn bad_rules_are_rejected() {
        let a = Anchor::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        assert!(Series::parse(&["RRULE:FREQ=SOMETIMES".into()], a).is_err());
        assert!(Series::parse(&["FOO:BAR".into()], a).is_err());
    }
}
