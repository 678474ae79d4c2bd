//! Recurring appointments: a master holds RFC 5545 content lines (`RRULE` plus `EXDATE`s), the
//! way Google's API takes them, evaluated in the appointment's own zone so 09:00 stays 09:00
//! across DST. Occurrences that differ from the rule are exceptions: appointments of their own
//! that name their master and the occurrence's original start ([`SeriesRef`]).
//!
//! Expansion is the `rrule` crate's; this module validates lines, reads `EXDATE`s (which come in
//! more shapes than the crate takes), and walks occurrences lazily so a caller stops at its
//! window's edge.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::RRuleSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;
use crate::appointment::{AppointmentData, When, local_midnight};
use crate::ids::AppointmentId;

/// At most this many content lines (one rule and its exclusions).
pub const LINES_MAX: usize = 500;
/// A series with more occurrences than this counts as endless for its extent: window queries
/// then always consider it, which is only slower, never wrong.
const EXTENT_WALK: usize = 5_000;

/// One occurrence's start as the rule generated it: an instant, or a date for all-day series.
/// Written `2027-03-22T09:00:00Z` or `2027-03-22`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OriginalStart {
    At(DateTime<Utc>),
    Date(NaiveDate),
}

impl fmt::Display for OriginalStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::At(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            Self::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl FromStr for OriginalStart {
    type Err = ValidationError;
    /// RFC 3339 with any offset, or a date.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Self::Date(d));
        }
        DateTime::parse_from_rfc3339(s).map(|t| Self::At(t.with_timezone(&Utc))).map_err(|_| {
            ValidationError::new(
                "original_start",
                format!(
                    "{s:?} is not an occurrence start: use RFC 3339 (2027-03-22T09:00:00Z) or a date for all-day series"
                ),
            )
        })
    }
}

impl Serialize for OriginalStart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OriginalStart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: ValidationError| serde::de::Error::custom(e.message))
    }
}

impl OriginalStart {
    /// The instant the occurrence would have started (all-day: local midnight in `tz`).
    pub fn instant(self, tz: Tz) -> DateTime<Utc> {
        match self {
            Self::At(t) => t,
            Self::Date(d) => local_midnight(d, tz),
        }
    }
}

/// What makes an appointment an exception of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRef {
    pub master: AppointmentId,
    pub original_start: OriginalStart,
}

/// A parsed series: its rule in its zone and its exclusions.
pub struct Series {
    set: RRuleSet,
    all_day: bool,
    /// Length of one occurrence (whole days for all-day series).
    length: Duration,
    exdates: BTreeSet<OriginalStart>,
    endless: bool,
}

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::new("recurrence", reason)
}

/// `DTSTART` for the rule: the local wall-clock start in the zone, or, for all-day series, UTC
/// midnight of the first date (the dates are what counts; UTC has no DST to shift them).
fn dtstart(when: &When, tz: Tz) -> String {
    match *when {
        When::Timed { start, .. } => {
            format!("DTSTART;TZID={}:{}", tz.name(), start.with_timezone(&tz).format("%Y%m%dT%H%M%S"))
        }
        When::AllDay { start, .. } => format!("DTSTART:{}T000000Z", start.format("%Y%m%d")),
    }
}

/// The rule part of an `RRULE` line, with a date-only `UNTIL` made the form `rrule` takes for
/// this DTSTART (the end of that local day for timed series, its UTC midnight for all-day ones),
/// which is what Google means by it.
fn rule_body(body: &str, when: &When, tz: Tz) -> Result<String, ValidationError> {
    let mut parts = Vec::new();
    let mut freq = None;
    for part in body.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| invalid(format!("{part:?} in RRULE is not NAME=VALUE")))?;
        let k = k.trim().to_ascii_uppercase();
        let v = v.trim().to_ascii_uppercase();
        match k.as_str() {
            "FREQ" => {
                if !matches!(v.as_str(), "DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY") {
                    return Err(invalid(format!(
                        "FREQ={v} is not supported: calendars repeat DAILY, WEEKLY, MONTHLY or YEARLY"
                    )));
                }
                freq = Some(v.clone());
            }
            "DTSTART" => {
                return Err(invalid("DTSTART does not belong in RRULE: the appointment's start is the series' start"));
            }
            "BYHOUR" | "BYMINUTE" | "BYSECOND" => {
                return Err(invalid(format!(
                    "{k} is not supported: an occurrence keeps the appointment's time of day"
                )));
            }
            "UNTIL" if v.len() == 8 => {
                let d = NaiveDate::parse_from_str(&v, "%Y%m%d")
                    .map_err(|_| invalid(format!("UNTIL={v} is not a date (YYYYMMDD)")))?;
                let until = match when {
                    When::AllDay { .. } => d.and_time(NaiveTime::MIN).and_utc(),
                    When::Timed { .. } => local_midnight(d + Duration::days(1), tz) - Duration::seconds(1),
                };
                parts.push(format!("UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
                continue;
            }
            _ => {}
        }
        parts.push(format!("{k}={v}"));
    }
    if freq.is_none() {
        return Err(invalid("RRULE needs FREQ (DAILY, WEEKLY, MONTHLY or YEARLY)"));
    }
    Ok(parts.join(";"))
}

/// The occurrences an `EXDATE` line names: `EXDATE;TZID=Europe/Berlin:20270322T100000`,
/// `EXDATE:20270322T090000Z`, `EXDATE;VALUE=DATE:20270322`, comma-separated lists of them.
fn exdates(line: &str, all_day: bool, tz: Tz) -> Result<Vec<OriginalStart>, ValidationError> {
    let (params, values) = line
        .split_once(':')
        .ok_or_else(|| invalid(format!("{line:?} has no value: EXDATE;TZID=Europe/Berlin:20270322T100000")))?;
    let zone = params
        .split(';')
        .find_map(|p| p.strip_prefix("TZID=").or_else(|| p.strip_prefix("tzid=")))
        .map(|z| z.parse::<Tz>().map_err(|_| invalid(format!("unknown TZID {z:?} in {line:?}"))))
        .transpose()?
        .unwrap_or(tz);
    let mut out = Vec::new();
    for v in values.split(',').map(str::trim) {
        let at = if v.len() == 8 {
            let d = NaiveDate::parse_from_str(v, "%Y%m%d").map_err(|_| invalid(format!("{v:?} is not a date")))?;
            if all_day { OriginalStart::Date(d) } else { OriginalStart::At(local_midnight(d, zone)) }
        } else if let Some(utc) = v.strip_suffix('Z') {
            let n = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
                .map_err(|_| invalid(format!("{v:?} is not a date-time (YYYYMMDDTHHMMSSZ)")))?;
            if all_day { OriginalStart::Date(n.date()) } else { OriginalStart::At(n.and_utc()) }
        } else {
            let n = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S")
                .map_err(|_| invalid(format!("{v:?} is not a date-time (YYYYMMDDTHHMMSS)")))?;
            if all_day {
                OriginalStart::Date(n.date())
            } else {
                let t = zone.from_local_datetime(&n).earliest().ok_or_else(|| {
                    invalid(format!("{v:?} does not exist in {} (skipped by a DST change)", zone.name()))
                })?;
                OriginalStart::At(t.with_timezone(&Utc))
            }
        };
        out.push(at);
    }
    Ok(out)
}

impl Series {
    /// Parses validated (or stored) lines for an appointment starting at `when` in `tz`.
    pub fn parse(lines: &[String], when: &When, tz: Tz) -> Result<Series, ValidationError> {
        if lines.len() > LINES_MAX {
            return Err(invalid(format!("at most {LINES_MAX} lines")));
        }
        let all_day = matches!(when, When::AllDay { .. });
        let mut rule = None;
        let mut excluded = BTreeSet::new();
        for line in lines {
            let line = line.trim();
            let name = line.split([':', ';']).next().unwrap_or_default().to_ascii_uppercase();
            match name.as_str() {
                "RRULE" => {
                    if rule.is_some() {
                        return Err(invalid("only one RRULE per series"));
                    }
                    rule = Some(rule_body(&line[6..], when, tz)?);
                }
                "EXDATE" => excluded.extend(exdates(line, all_day, tz)?),
                "RDATE" | "EXRULE" => {
                    return Err(invalid(format!(
                        "{name} is not supported: Outlook cannot hold it; make the extra dates appointments of their own"
                    )));
                }
                _ => {
                    return Err(invalid(format!("{line:?} is not a recurrence line: expected RRULE:… or EXDATE…")));
                }
            }
        }
        let rule = rule.ok_or_else(|| invalid("a recurrence needs one RRULE line"))?;
        let endless = !rule.contains("COUNT=") && !rule.contains("UNTIL=");
        let text = format!("{}\nRRULE:{rule}", dtstart(when, tz));
        let set: RRuleSet = text.parse().map_err(|e: rrule::RRuleError| invalid(format!("RRULE:{rule}: {e}")))?;
        let length = match *when {
            When::Timed { start, end } => end - start,
            When::AllDay { start, end } => end - start,
        };
        Ok(Series { set, all_day, length, exdates: excluded, endless })
    }

    /// The lines as stored: trimmed, the names upper case; each checked by [`Series::parse`].
    pub fn validate(lines: Vec<String>, when: &When, tz: Tz) -> Result<Vec<String>, ValidationError> {
        let lines: Vec<String> = lines
            .into_iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .map(|l| match l.find([':', ';']) {
                Some(i) => format!("{}{}", l[..i].to_ascii_uppercase(), &l[i..]),
                None => l,
            })
            .collect();
        if lines.is_empty() {
            return Ok(lines);
        }
        let series = Series::parse(&lines, when, tz)?;
        // RFC 5545 leaves a start the rule does not generate undefined: Google shows it as an
        // extra first occurrence, Outlook drops it. Refused, so both calendars agree.
        let first = (&series.set).into_iter().next().map(|t| series.occurrence(t));
        let start = match *when {
            When::Timed { start, .. } => OriginalStart::At(start),
            When::AllDay { start, .. } => OriginalStart::Date(start),
        };
        match first {
            None => return Err(invalid("the rule has no occurrence at or after the start")),
            Some(f) if f != start => {
                return Err(invalid(format!(
                    "the start ({start}) must be the rule's first occurrence, which is {f}: move the start there or change the rule"
                )));
            }
            Some(_) => {}
        }
        Ok(lines)
    }

    fn occurrence(&self, t: DateTime<rrule::Tz>) -> OriginalStart {
        if self.all_day { OriginalStart::Date(t.date_naive()) } else { OriginalStart::At(t.with_timezone(&Utc)) }
    }

    /// Every occurrence, ascending, exclusions left out (unbounded for endless rules).
    pub fn occurrences(&self) -> impl Iterator<Item = OriginalStart> + '_ {
        (&self.set).into_iter().map(|t| self.occurrence(t)).filter(|o| !self.exdates.contains(o))
    }

    /// Occurrences that overlap `[from, to)`, ascending, in `tz` (all-day dates are local days).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<OriginalStart> {
        let mut out = Vec::new();
        for o in self.occurrences() {
            let start = o.instant(tz);
            if start >= to {
                break;
            }
            if self.end_of(o, tz) > from {
                out.push(o);
            }
        }
        out
    }

    /// When occurrence `o` ends.
    pub fn end_of(&self, o: OriginalStart, tz: Tz) -> DateTime<Utc> {
        match o {
            OriginalStart::At(t) => t + self.length,
            OriginalStart::Date(d) => local_midnight(d + self.length, tz),
        }
    }

    /// When the last occurrence ends; `None` for a series without end (or too long to walk).
    pub fn extent_end(&self, tz: Tz) -> Option<DateTime<Utc>> {
        if self.endless {
            return None;
        }
        let mut last = None;
        for (i, o) in (&self.set).into_iter().map(|t| self.occurrence(t)).enumerate() {
            if i >= EXTENT_WALK {
                return None;
            }
            last = Some(o);
        }
        last.map(|o| self.end_of(o, tz))
    }

    /// Whether `o` is an occurrence of the rule (exclusions aside): what an exception's
    /// original start must be.
    pub fn generates(&self, o: OriginalStart, tz: Tz) -> bool {
        let at = o.instant(tz);
        for c in (&self.set).into_iter().map(|t| self.occurrence(t)) {
            if c == o {
                return true;
            }
            if c.instant(tz) > at {
                return false;
            }
        }
        false
    }
}

/// The master's content at occurrence `o`: same length, no rule of its own.
pub fn occurrence_data(master: &AppointmentData, series: &Series, o: OriginalStart) -> AppointmentData {
    let when = match (o, master.when) {
        (OriginalStart::At(start), When::Timed { .. }) => {
            When::Timed { start, end: series.end_of(o, master.time_zone) }
        }
        (OriginalStart::Date(d), When::AllDay { start, end }) => When::AllDay { start: d, end: d + (end - start) },
        // A master whose kind changed since: its occurrences follow its current kind.
        (o, _) => {
            let start = o.instant(master.time_zone);
            When::Timed { start, end: series.end_of(OriginalStart::At(start), master.time_zone) }
        }
    };
    AppointmentData { when, recurrence: Vec::new(), ..master.clone() }
}

/// The far edge used for a series without end.
pub fn endless() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).single().expect("a valid instant")
}

/// The instants `data` covers: a single appointment's own, a master's from its first
/// occurrence's start to its last's end ([`endless`] for a rule without end, or lines that no
/// longer parse: found too often is better than never).
pub fn span(data: &AppointmentData) -> (DateTime<Utc>, DateTime<Utc>) {
    let (start, end) = data.utc_range();
    if data.recurrence.is_empty() {
        return (start, end);
    }
    let last = Series::parse(&data.recurrence, &data.when, data.time_zone)
        .ok()
        .and_then(|s| s.extent_end(data.time_zone))
        .unwrap_or_else(endless);
    (start, last.max(end))
}

/// `original` as an `EXDATE` line for a series in `tz`.
pub fn exdate_line(original: OriginalStart, tz: Tz) -> String {
    match original {
        OriginalStart::At(t) => format!("EXDATE;TZID={}:{}", tz.name(), t.with_timezone(&tz).format("%Y%m%dT%H%M%S")),
        OriginalStart::Date(d) => format!("EXDATE;VALUE=DATE:{}", d.format("%Y%m%d")),
    }
}

/// `lines` ended before `from`: the rule gets an `UNTIL` just before that occurrence and drops
/// `COUNT` (the occurrences before `from` are what is left), exclusions from `from` on go.
/// "This and following", as Google's own UI splits a series.
pub fn ended_before(lines: &[String], from: OriginalStart, tz: Tz) -> Vec<String> {
    let until = match from {
        OriginalStart::At(t) => format!("UNTIL={}", (t - Duration::seconds(1)).format("%Y%m%dT%H%M%SZ")),
        OriginalStart::Date(d) => format!("UNTIL={}", (d - Duration::days(1)).format("%Y%m%d")),
    };
    lines
        .iter()
        .filter_map(|l| {
            let upper = l.to_ascii_uppercase();
            if upper.starts_with("RRULE") {
                let body: Vec<&str> = l[6..]
                    .split(';')
                    .filter(|p| {
                        let k = p.split('=').next().unwrap_or_default().to_ascii_uppercase();
                        k != "UNTIL" && k != "COUNT" && !p.is_empty()
                    })
                    .collect();
                Some(format!("RRULE:{};{until}", body.join(";")))
            } else if upper.starts_with("EXDATE") {
                let kept = exdates(l, matches!(from, OriginalStart::Date(_)), tz)
                    .ok()?
                    .into_iter()
                    .filter(|o| *o < from)
                    .map(|o| exdate_line(o, tz))
                    .collect::<Vec<_>>();
                (!kept.is_empty()).then(|| kept.join("\n"))
            } else {
                Some(l.clone())
            }
        })
        .flat_map(|l| l.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// The rule continued from `from`: `COUNT` reduced by the occurrences before it, everything else
/// kept; exclusions before `from` dropped. The new series starts at `from`.
pub fn continued_from(series: &Series, lines: &[String], from: OriginalStart, tz: Tz) -> Vec<String> {
    let before = (&series.set).into_iter().map(|t| series.occurrence(t)).take_while(|o| *o < from).count();
    lines
        .iter()
        .filter_map(|l| {
            let upper = l.to_ascii_uppercase();
            if upper.starts_with("RRULE") {
                let body: Vec<String> = l[6..]
                    .split(';')
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) if k.eq_ignore_ascii_case("COUNT") => {
                            let n: usize = v.parse().unwrap_or(1);
                            format!("COUNT={}", n.saturating_sub(before).max(1))
                        }
                        _ => p.to_owned(),
                    })
                    .collect();
                Some(format!("RRULE:{}", body.join(";")))
            } else if upper.starts_with("EXDATE") {
                let kept = exdates(l, matches!(from, OriginalStart::Date(_)), tz)
                    .ok()?
                    .into_iter()
                    .filter(|o| *o >= from)
                    .map(|o| exdate_line(o, tz))
                    .collect::<Vec<_>>();
                (!kept.is_empty()).then(|| kept.join("\n"))
            } else {
                Some(l.clone())
            }
        })
        .flat_map(|l| l.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn timed(local: &str, tz: Tz, minutes: i64) -> When {
        let n = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M").unwrap();
        let start = tz.from_local_datetime(&n).unwrap().with_timezone(&Utc);
        When::Timed { start, end: start + Duration::minutes(minutes) }
    }

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn weekly_keeps_wall_clock_time_across_dst() {
        let when = timed("2027-03-15T10:00", berlin(), 60);
        let s = Series::parse(&lines(&["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3"]), &when, berlin()).unwrap();
        let got: Vec<String> = s.occurrences().map(|o| o.to_string()).collect();
        // 10:00 CET is 09:00Z; after 28 March, 10:00 CEST is 08:00Z.
        assert_eq!(got, ["2027-03-15T09:00:00Z", "2027-03-22T09:00:00Z", "2027-03-29T08:00:00Z"]);
        assert_eq!(s.extent_end(berlin()).unwrap().to_rfc3339(), "2027-03-29T09:00:00+00:00");
    }

    #[test]
    fn exdates_in_every_shape_are_left_out() {
        let when = timed("2027-03-15T10:00", berlin(), 60);
        for ex in [
            "EXDATE;TZID=Europe/Berlin:20270322T100000",
            "EXDATE:20270322T090000Z",
            "exdate;TZID=Europe/Berlin:20270322T100000,20270405T100000",
        ] {
            let s = Series::parse(&lines(&["RRULE:FREQ=WEEKLY;COUNT=4", ex]), &when, berlin()).unwrap();
            let got: Vec<String> = s.occurrences().map(|o| o.to_string()).collect();
            assert!(!got.contains(&"2027-03-22T09:00:00Z".to_owned()), "{ex}: {got:?}");
            assert_eq!(got[0], "2027-03-15T09:00:00Z");
        }
    }

    #[test]
    fn all_day_series_are_dates() {
        let when = When::AllDay {
            start: NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
            end: NaiveDate::from_ymd_opt(2027, 2, 1).unwrap(),
        };
        let tz: Tz = "Pacific/Kiritimati".parse().unwrap();
        let s = Series::parse(&lines(&["RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;UNTIL=20270430"]), &when, tz).unwrap();
        let got: Vec<String> = s.occurrences().map(|o| o.to_string()).collect();
        assert_eq!(got, ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]);
        let window = s.between(
            local_midnight(NaiveDate::from_ymd_opt(2027, 2, 28).unwrap(), tz),
            Utc::now() + Duration::days(9000),
            tz,
        );
        assert_eq!(window.len(), 3);
    }

    #[test]
    fn ordinals_setpos_and_wkst() {
        let when = timed("2027-01-29T09:00", Tz::UTC, 30);
        let rule = lines(&["RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3"]);
        let s = Series::parse(&rule, &when, Tz::UTC).unwrap();
        let got: Vec<String> = s.occurrences().map(|o| o.to_string()).collect();
        // The last weekday of each month.
        assert_eq!(got, ["2027-01-29T09:00:00Z", "2027-02-26T09:00:00Z", "2027-03-31T09:00:00Z"]);
        // A start the rule does not generate is refused, naming the first one it does.
        let e = Series::validate(rule, &timed("2027-01-05T09:00", Tz::UTC, 30), Tz::UTC).unwrap_err();
        assert!(e.message.contains("2027-01-29T09:00:00Z"), "{}", e.message);
        let thanksgiving = timed("2027-11-25T09:00", Tz::UTC, 30);
        assert!(Series::validate(lines(&["RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"]), &thanksgiving, Tz::UTC).is_ok());
        assert!(Series::parse(&lines(&["RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU"]), &when, Tz::UTC).is_ok());
    }

    #[test]
    fn bad_lines_name_the_reason() {
        let when = timed("2027-01-05T09:00", Tz::UTC, 30);
        for (l, says) in [
            (vec!["RRULE:FREQ=HOURLY"], "HOURLY"),
            (vec!["RRULE:COUNT=3"], "FREQ"),
            (vec!["RDATE:20270101T090000Z"], "RDATE"),
            (vec!["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"], "one RRULE"),
            (vec!["EXDATE:20270101T090000Z"], "needs one RRULE"),
            (vec!["FREQ=DAILY"], "not a recurrence line"),
            (vec!["RRULE:FREQ=DAILY;BYHOUR=3"], "BYHOUR"),
            (vec!["RRULE:FREQ=WEEKLY;BYDAY=XX"], "RRULE"),
            (vec!["RRULE:FREQ=DAILY", "EXDATE;TZID=Mars/Base:20270101T090000"], "Mars"),
        ] {
            let e = Series::validate(lines(&l), &when, Tz::UTC).err().unwrap_or_else(|| panic!("{l:?} accepted"));
            assert_eq!(e.field, "recurrence");
            assert!(e.message.contains(says), "{l:?}: {}", e.message);
        }
        assert_eq!(Series::validate(vec![], &when, Tz::UTC).unwrap(), Vec::<String>::new());
        assert_eq!(
            Series::validate(lines(&[" rrule:FREQ=DAILY;COUNT=2 "]), &when, Tz::UTC).unwrap(),
            ["RRULE:FREQ=DAILY;COUNT=2"]
        );
    }

    #[test]
    fn splitting_ends_one_series_and_continues_another() {
        let when = timed("2027-03-15T10:00", berlin(), 60);
        let l =
            lines(&["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6", "EXDATE;TZID=Europe/Berlin:20270322T100000,20270412T100000"]);
        let s = Series::parse(&l, &when, berlin()).unwrap();
        let all: Vec<OriginalStart> = s.occurrences().collect();
        let from = all[2]; // 2027-04-05 (22 March is excluded)
        let head = ended_before(&l, from, berlin());
        let hs = Series::parse(&head, &when, berlin()).unwrap();
        assert_eq!(hs.occurrences().collect::<Vec<_>>(), all[..2]);
        let tail = continued_from(&s, &l, from, berlin());
        let OriginalStart::At(t) = from else { unreachable!() };
        let tail_when = When::Timed { start: t, end: t + Duration::hours(1) };
        let ts = Series::parse(&tail, &tail_when, berlin()).unwrap();
        assert_eq!(ts.occurrences().collect::<Vec<_>>(), all[2..], "{tail:?}");
        assert!(s.generates(from, berlin()));
        assert!(!s.generates(OriginalStart::At(t + Duration::hours(1)), berlin()));
    }

    #[test]
    fn original_starts_read_and_write_both_forms() {
        for s in ["2027-03-22T09:00:00Z", "2027-03-22"] {
            assert_eq!(s.parse::<OriginalStart>().unwrap().to_string(), s);
        }
        assert_eq!("2027-03-22T10:00:00+01:00".parse::<OriginalStart>().unwrap().to_string(), "2027-03-22T09:00:00Z");
        assert_eq!("soon".parse::<OriginalStart>().unwrap_err().field, "original_start");
    }
}
