//! Recurrence expansion shared by Google (`RRULE`/`EXRULE`/`RDATE`/`EXDATE` lines) and Graph
//! (pattern + range objects, converted to an RRULE first): occurrences in ascending order,
//! computed lazily so callers stop at their window edge.

use std::collections::HashSet;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::RRuleSet;

use crate::google::resolve_local;

/// How many occurrences [`Series::last`] walks to find where a series with `COUNT` or
/// `UNTIL` ends; past it the series counts as endless (its index extent reaches the far
/// future, which only makes window queries look at it).
pub(crate) const MAX_EXPANSION: usize = 10_000;

/// Slots for expansions re-anchored near a requested start (see [`Series::occurrences_from`]).
const JUMP_SLOTS: usize = 8;

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

/// The period of a rule, for re-anchoring its expansion (no sub-daily rules exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A single `RRULE` whose occurrences depend on DTSTART only through the period grid and
/// the parts DTSTART implies (no `COUNT`, no `BYSETPOS`, no `EXRULE`): moving DTSTART
/// forward by whole periods, with the implied parts written out, leaves every later
/// occurrence where it was.
struct Jump {
    freq: Freq,
    interval: i64,
    /// The rule body with `BYMONTHDAY`/`BYMONTH` implied by DTSTART made explicit.
    body: String,
}

pub(crate) struct Series {
    anchor: Anchor,
    set: Option<RRuleSet>,
    jump: Option<Jump>,
    /// An `RRULE` without `COUNT` or `UNTIL`: the series never ends.
    endless: bool,
    /// Expansions of `jump` re-anchored at a later DTSTART, filled on demand.
    jumped: [OnceLock<(Anchor, RRuleSet)>; JUMP_SLOTS],
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
                    check_daily_or_longer(&body)?;
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
        let endless = rules.iter().any(|(n, body)| {
            let upper = body.to_ascii_uppercase();
            n == "RRULE" && !upper.contains("COUNT=") && !upper.contains("UNTIL=")
        });
        let jump = match rules.as_slice() {
            [(n, body)] if n == "RRULE" => jump_of(body, anchor),
            _ => None,
        };
        Ok(Series { anchor, set, jump, endless, jumped: Default::default(), rdates, exdates })
    }

    /// Occurrences in ascending order (unbounded for endless rules: callers stop).
    pub(crate) fn occurrences(&self) -> impl Iterator<Item = Occ> + '_ {
        self.merged(self.set.as_ref())
    }

    /// The occurrences of `set` (the series' rule, possibly re-anchored) merged with the
    /// RDATEs, EXDATEs removed, ascending.
    fn merged<'a>(&'a self, set: Option<&'a RRuleSet>) -> impl Iterator<Item = Occ> + 'a {
        let all_day = matches!(self.anchor, Anchor::Date(_));
        let mut rule_iter = set.map(|s| {
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
    ///
    /// rrule has no seek, so a plain walk counts from DTSTART. For a rule that allows it
    /// ([`Jump`]) the expansion starts instead from a DTSTART moved forward by whole
    /// periods to a little before `min_ms`, so reaching the window costs a period or two
    /// whatever the series' age. Other rules (`COUNT`, `BYSETPOS`, `EXRULE`) walk from
    /// DTSTART: at most one occurrence per day (sub-daily rules are refused at parse), so
    /// at most `COUNT` or the days since the start. The walk has no step limit: it ends at
    /// the first occurrence at or after `min_ms` or with the series, never short of it.
    pub(crate) fn occurrences_from(&self, min_ms: i64, tz: Tz) -> impl Iterator<Item = Occ> + '_ {
        let set = self.jumped_set(min_ms).or(self.set.as_ref());
        self.merged(set).skip_while(move |o| o.key(tz) < min_ms)
    }

    /// The expansion re-anchored for `min_ms`: one already built whose DTSTART is at or
    /// before the wanted one (the latest such), else a new one in a free slot.
    fn jumped_set(&self, min_ms: i64) -> Option<&RRuleSet> {
        let jump = self.jump.as_ref()?;
        // Three days of margin covers any zone offset between `min_ms` and local dates.
        let min = DateTime::<Utc>::from_timestamp_millis(min_ms.checked_sub(3 * 86_400_000)?)?;
        let target = jump.anchor_before(self.anchor, min)?;
        let target_key = anchor_key(target);
        let mut best: Option<&(Anchor, RRuleSet)> = None;
        for slot in &self.jumped {
            if let Some(filled) = slot.get() {
                let k = anchor_key(filled.0);
                if k == target_key {
                    return Some(&filled.1);
                }
                if k < target_key && best.is_none_or(|b| anchor_key(b.0) < k) {
                    best = Some(filled);
                }
                continue;
            }
            let text = format!("{}\nRRULE:{}", dtstart_line(target), jump.body);
            // Cannot fail when the original parsed (same rule and zone, a DTSTART that
            // exists); if it did, walking from an earlier DTSTART is still exact.
            let Ok(set) = text.parse::<RRuleSet>() else { break };
            // Another thread may have filled the slot meanwhile: use it only if not later.
            let filled = slot.get_or_init(|| (target, set));
            if anchor_key(filled.0) <= target_key {
                return Some(&filled.1);
            }
            break;
        }
        best.map(|(_, s)| s)
    }

    /// Whether `occ` is one of the series' occurrences, however far into it (dates order
    /// the same in every zone, so UTC keys will do).
    pub(crate) fn contains(&self, occ: Occ) -> bool {
        self.occurrences_from(occ.key(Tz::UTC), Tz::UTC).next() == Some(occ)
    }

    /// The last occurrence, if the series ends within [`MAX_EXPANSION`] instances.
    pub(crate) fn last(&self) -> Option<Occ> {
        if self.endless {
            return None;
        }
        let mut it = self.occurrences();
        let mut last = None;
        for _ in 0..MAX_EXPANSION {
            match it.next() {
                Some(o) => last = Some(o),
                None => return last,
            }
        }
        None
    }
}

/// Refuses rules that recur more than once a day: Google Calendar offers nothing shorter
/// than daily (and the sandbox's expansion cost assumes at most one rule occurrence per
/// day), so `FREQ=SECONDLY|MINUTELY|HOURLY` and `BYHOUR`/`BYMINUTE`/`BYSECOND` are 400
/// "Invalid recurrence rule." (stricter than Google if it ever accepted them).
fn check_daily_or_longer(body: &str) -> Result<(), String> {
    for part in body.split(';') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = k.trim().to_ascii_uppercase();
        if k == "FREQ" && matches!(v.trim().to_ascii_uppercase().as_str(), "SECONDLY" | "MINUTELY" | "HOURLY") {
            return Err(format!("FREQ={v} is not supported: the shortest recurrence is daily."));
        }
        if matches!(k.as_str(), "BYHOUR" | "BYMINUTE" | "BYSECOND") {
            return Err(format!("{k} is not supported."));
        }
    }
    Ok(())
}

/// How the rule `body` can be re-anchored, if it can (see [`Jump`]).
fn jump_of(body: &str, anchor: Anchor) -> Option<Jump> {
    let parts: Vec<(String, &str)> = body
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim()))
        .collect();
    let get = |k: &str| parts.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    if get("COUNT").is_some() || get("BYSETPOS").is_some() {
        return None;
    }
    let freq = match get("FREQ")?.to_ascii_uppercase().as_str() {
        "DAILY" => Freq::Daily,
        "WEEKLY" => Freq::Weekly,
        "MONTHLY" => Freq::Monthly,
        "YEARLY" => Freq::Yearly,
        _ => return None,
    };
    let interval = match get("INTERVAL") {
        None => 1,
        Some(v) => v.parse::<i64>().ok().filter(|i| *i >= 1)?,
    };
    let d0 = anchor_date(anchor);
    // RFC 5545 / dateutil: without BYDAY, BYMONTHDAY, BYYEARDAY and BYWEEKNO a monthly
    // rule takes DTSTART's day of month, a yearly one its day and (without BYMONTH) month.
    let implied = ["BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO"].iter().all(|k| get(k).is_none());
    let mut body = body.to_owned();
    if implied && matches!(freq, Freq::Monthly | Freq::Yearly) {
        body.push_str(&format!(";BYMONTHDAY={}", d0.day()));
    }
    if implied && freq == Freq::Yearly && get("BYMONTH").is_none() {
        body.push_str(&format!(";BYMONTH={}", d0.month()));
    }
    Some(Jump { freq, interval, body })
}

impl Jump {
    /// DTSTART moved forward by whole multiples of the rule's period (days or weeks keep
    /// the weekday; months and years start on the 1st, the day being explicit in `body`),
    /// at the same local time, at least one full period before `min`'s date; `None` when
    /// that is no later than the original. The local time must exist on the new date
    /// (DST gaps step one period further back).
    fn anchor_before(&self, anchor: Anchor, min: DateTime<Utc>) -> Option<Anchor> {
        let d0 = anchor_date(anchor);
        let t = match anchor {
            Anchor::Date(_) => min.date_naive(),
            Anchor::Local(_, tz) => min.with_timezone(&tz).date_naive(),
        };
        let months = i64::from(t.year() - d0.year()) * 12 + i64::from(t.month()) - i64::from(d0.month());
        let periods = match self.freq {
            Freq::Daily => (t - d0).num_days(),
            Freq::Weekly => (t - d0).num_days().div_euclid(7),
            Freq::Monthly => months,
            Freq::Yearly => i64::from(t.year() - d0.year()),
        };
        let mut k = periods.div_euclid(self.interval) - 1;
        for _ in 0..3 {
            if k <= 0 {
                return None;
            }
            let steps = u32::try_from(k * self.interval).ok()?;
            let date = match self.freq {
                Freq::Daily => d0.checked_add_days(chrono::Days::new(u64::from(steps)))?,
                Freq::Weekly => d0.checked_add_days(chrono::Days::new(7 * u64::from(steps)))?,
                Freq::Monthly => d0.with_day(1)?.checked_add_months(Months::new(steps))?,
                Freq::Yearly => {
                    d0.with_day(1)?.with_month(1)?.checked_add_months(Months::new(steps.checked_mul(12)?))?
                }
            };
            match anchor {
                Anchor::Date(_) => return Some(Anchor::Date(date)),
                Anchor::Local(n, tz) => {
                    let local = date.and_time(n.time());
                    if tz.from_local_datetime(&local).single().is_some() {
                        return Some(Anchor::Local(local, tz));
                    }
                    k -= 1;
                }
            }
        }
        None
    }
}

fn anchor_date(anchor: Anchor) -> NaiveDate {
    match anchor {
        Anchor::Date(d) => d,
        Anchor::Local(n, _) => n.date(),
    }
}

/// Orders anchors of one series (all dates or all local times in one zone).
fn anchor_key(anchor: Anchor) -> i64 {
    match anchor {
        Anchor::Date(d) => d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis(),
        Anchor::Local(n, tz) => resolve_local(n, tz).timestamp_millis(),
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
        assert!(s.last().is_none(), "endless, known without walking");
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

    #[test]
    fn sub_daily_rules_are_refused() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let a = Anchor::Local(local("2024-01-01T09:00:00"), tz);
        for rule in [
            "RRULE:FREQ=SECONDLY",
            "RRULE:FREQ=MINUTELY;COUNT=5",
            "RRULE:freq=hourly",
            "RRULE:FREQ=DAILY;BYHOUR=9,10",
            "RRULE:FREQ=DAILY;BYMINUTE=0,30",
            "RRULE:FREQ=WEEKLY;BYSECOND=1",
        ] {
            assert!(Series::parse(&[rule.into()], a).is_err(), "{rule}");
        }
        let ex = ["RRULE:FREQ=DAILY".to_owned(), "EXRULE:FREQ=HOURLY".to_owned()];
        assert!(Series::parse(&ex, a).is_err());
        assert!(Series::parse(&["RRULE:FREQ=DAILY".into()], a).is_ok());
    }

    /// The plain walk from DTSTART, the reference the re-anchored expansion must equal.
    fn plain_from(s: &Series, min_ms: i64, tz: Tz) -> Vec<Occ> {
        s.occurrences().skip_while(|o| o.key(tz) < min_ms).take(25).collect()
    }

    #[test]
    fn re_anchored_expansion_equals_the_plain_walk() {
        let zurich: Tz = "Europe/Zurich".parse().unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let timed = |s: &str, tz| Anchor::Local(local(s), tz);
        let day = |y, m, d| Anchor::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let cases: Vec<(Vec<&str>, Anchor, Tz)> = vec![
            (vec!["RRULE:FREQ=DAILY"], timed("2019-03-30T02:30:00", zurich), zurich),
            (vec!["RRULE:FREQ=DAILY;INTERVAL=3"], timed("2019-01-01T09:00:00", zurich), zurich),
            (vec!["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"], timed("2019-01-02T18:00:00", ny), ny),
            (vec!["RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,FR;WKST=SU"], timed("2019-01-03T10:00:00", zurich), zurich),
            (vec!["RRULE:FREQ=WEEKLY;INTERVAL=2"], timed("2019-01-06T23:30:00", ny), ny),
            (vec!["RRULE:FREQ=DAILY;UNTIL=20210315T000000Z"], timed("2019-02-01T08:00:00", zurich), zurich),
            (vec!["RRULE:FREQ=WEEKLY;BYDAY=SA;UNTIL=20210101"], timed("2019-02-02T08:00:00", ny), ny),
            (
                vec![
                    "RRULE:FREQ=DAILY;INTERVAL=2",
                    "EXDATE;TZID=Europe/Zurich:20200105T090000,20200331T090000",
                    "RDATE;TZID=Europe/Zurich:20200106T120000,20201231T170000",
                ],
                timed("2019-01-01T09:00:00", zurich),
                zurich,
            ),
            (vec!["RRULE:FREQ=MONTHLY"], timed("2019-01-31T09:00:00", zurich), zurich),
            (vec!["RRULE:FREQ=MONTHLY;INTERVAL=5;BYDAY=2TU"], timed("2019-01-08T09:00:00", ny), ny),
            (vec!["RRULE:FREQ=MONTHLY;BYMONTHDAY=-1,15"], timed("2019-01-15T09:00:00", ny), ny),
            (vec!["RRULE:FREQ=YEARLY"], timed("2016-02-29T09:00:00", zurich), zurich),
            (
                vec!["RRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=3,10;BYDAY=-1SU"],
                timed("2018-03-25T01:30:00", zurich),
                zurich,
            ),
            (vec!["RRULE:FREQ=DAILY"], day(2019, 1, 1), ny),
            (vec!["RRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TH;UNTIL=20220101"], day(2019, 1, 3), zurich),
            (vec!["RRULE:FREQ=MONTHLY;INTERVAL=2"], day(2019, 1, 30), zurich),
            (vec!["RRULE:FREQ=YEARLY;BYYEARDAY=1,100,-1"], day(2019, 1, 1), ny),
        ];
        let start = local("2019-01-01T00:00:00").and_utc().timestamp_millis();
        for (lines, anchor, tz) in cases {
            let lines: Vec<String> = lines.into_iter().map(str::to_owned).collect();
            // A fresh series for the reference (no re-anchored expansions cached) and one
            // reused across requests, as a master is within one listing.
            let reused = Series::parse(&lines, anchor).unwrap();
            assert!(reused.jump.is_some(), "{lines:?} re-anchors");
            // Every 9 days 17 hours for three years, then back again: covers every
            // weekday, DST weekends and slots reused out of order.
            let step = (9 * 24 + 17) * 3_600_000;
            let mins: Vec<i64> =
                (0..120).map(|i| start + i * step).chain((0..40).map(|i| start + i * 3 * step)).collect();
            for min in mins {
                let plain = Series::parse(&lines, anchor).unwrap();
                let want = plain_from(&plain, min, tz);
                let got: Vec<Occ> = reused.occurrences_from(min, tz).take(25).collect();
                assert_eq!(got, want, "{lines:?} from {min}");
                if let Some(first) = want.first() {
                    assert!(reused.contains(*first));
                }
            }
            assert!(reused.jumped.iter().any(|s| s.get().is_some_and(|(a, _)| anchor_key(*a) > anchor_key(anchor))));
        }
    }

    #[test]
    fn re_anchoring_is_skipped_where_dtstart_matters() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let a = Anchor::Local(local("2020-01-01T09:00:00"), tz);
        for rule in ["RRULE:FREQ=DAILY;COUNT=4000", "RRULE:FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1"] {
            let s = Series::parse(&[rule.into()], a).unwrap();
            assert!(s.jump.is_none(), "{rule}");
        }
        let s = Series::parse(&["RRULE:FREQ=DAILY".into(), "EXRULE:FREQ=WEEKLY".into()], a).unwrap();
        assert!(s.jump.is_none());
        // A plain walk still reaches a late window exactly.
        let s = Series::parse(&["RRULE:FREQ=DAILY;COUNT=4000".into()], a).unwrap();
        let from = local("2026-11-02T00:00:00").and_utc().timestamp_millis();
        assert_eq!(s.occurrences_from(from, tz).next().map(|o| o.stamp()).as_deref(), Some("20261102T080000Z"));
    }
}
