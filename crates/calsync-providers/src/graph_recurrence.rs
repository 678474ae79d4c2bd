//! Recurrence rules between RFC 5545 content lines (`RRULE`, `EXDATE`: what Google's API takes
//! and returns) and Microsoft Graph's `patternedRecurrence` (`{"pattern": …, "range": …}`).
//!
//! Graph's model is a small part of RFC 5545: one pattern (daily; weekly on a set of days; a day
//! of the month; the first to fourth or last of a set of weekdays in the month; the same two in one
//! month of the year), one range (an end date, a number of occurrences, or no end), and no
//! exceptions in the rule (deleted occurrences are separate events). Both directions go through
//! one internal rule that holds exactly what Graph can express. That is what makes the RFC 5545
//! side canonical: lines are parsed into it, what the lines leave to the series start (the weekday
//! of a weekly rule, the day of a monthly one) is filled in, and it is written back in one form.
//! Whatever RFC 5545 says that Graph cannot is refused with an [`Unsupported`] reason a user can
//! read, never approximated.
//!
//! The canonical `RRULE` has its parts in this order: FREQ, INTERVAL (only when above 1), COUNT
//! or UNTIL, BYMONTH, BYMONTHDAY, BYDAY, BYSETPOS, WKST. Days are listed Monday first. WEEKLY
//! always has BYDAY, MONTHLY always BYMONTHDAY or BYDAY, YEARLY always BYMONTH and one of those
//! two. A single weekday picked by position is written `BYDAY=2TU`, several `BYDAY=TH,FR;BYSETPOS=1`.
//! WKST is written only for a WEEKLY rule with an INTERVAL above 1 and a week that does not start
//! on Monday: nowhere else does it move an occurrence, and Graph reports `sunday` for every
//! series it did not get another day for, so keeping it would make equal rules compare unequal.
//!
//! UNTIL: Graph ends a series on an inclusive local date (`range.endDate`), RFC 5545 at an
//! inclusive instant. An UNTIL becomes the last local date whose occurrence (at the series'
//! start time) is not after it; an end date becomes UNTIL at the series' start time on that
//! date, in UTC (`UNTIL=20270401T080000Z` for 10:00 in Berlin), or the bare date for an all-day
//! series (`UNTIL=20270401`). Each is the other's exact inverse, whatever the offset that day.
//!
//! One difference is let through rather than refused: a repeat on a day that some months lack
//! (the 29th to 31st, 29 February) is skipped in those months by RFC 5545, while Exchange
//! documents moving it to the last day of the month. Refusing it would refuse every "monthly on
//! the 31st".

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde_json::{Value, json};

/// Why a rule cannot be expressed on the other side; shown to users, so it says it plainly
/// and names the part of the rule at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// The series' first occurrence: its local start date and time in the series' zone (for an
/// all-day series the time is midnight and `all_day` is true). Rules leave parts to it (a
/// weekly rule without BYDAY repeats on its weekday) and ranges are read in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStart {
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub zone: Tz,
    pub all_day: bool,
}

/// RFC 5545 lines -> Graph `{"pattern", "range"}`, plus the EXDATE occurrences that Graph cannot
/// carry in the rule, as local times in the series' zone (at midnight for an all-day series),
/// sorted: the caller deletes those occurrences after writing the master. No lines at all is
/// no recurrence: `null`, which is also how Graph clears one.
pub fn to_graph(lines: &[String], start: &SeriesStart) -> Result<(Value, Vec<NaiveDateTime>), Unsupported> {
    let (rule, excluded) = parse(lines, start)?;
    Ok((rule.map_or(Value::Null, |rule| graph_json(&rule, start)), excluded))
}

/// Graph `patternedRecurrence` -> RFC 5545 lines in canonical form (module docs): one RRULE
/// line, or none for `null`. Graph has no EXDATE; deleted occurrences are absent events.
/// The range's dates are read in `start.zone`; `recurrenceTimeZone` is not consulted, since
/// Outlook writes Windows zone names there and the caller already resolved the series' zone.
pub fn from_graph(recurrence: &Value, start: &SeriesStart) -> Result<Vec<String>, Unsupported> {
    if recurrence.is_null() {
        return Ok(Vec::new());
    }
    Ok(vec![write_rrule(&read_graph(recurrence)?, start)])
}

/// The canonical form of RFC 5545 lines, as [`from_graph`] would write them, so a rule written
/// by hand compares equal to the same rule read back from Graph. EXDATE lines are checked but
/// left out: Graph keeps them as deleted occurrences, not in the rule ([`to_graph`] returns them).
pub fn canonical(lines: &[String], start: &SeriesStart) -> Result<Vec<String>, Unsupported> {
    let (rule, _) = parse(lines, start)?;
    Ok(rule.map(|rule| write_rrule(&rule, start)).into_iter().collect())
}

/// A recurrence as Graph can hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    interval: u32,
    pattern: Pattern,
    end: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Daily,
    /// `first_day` is Monday unless the interval is above 1, the only case where it counts.
    Weekly {
        days: DaySet,
        first_day: Weekday,
    },
    Monthly(InMonth),
    Yearly {
        month: u32,
        on: InMonth,
    },
}

/// Where in the month an occurrence falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InMonth {
    /// A day of the month, 1 to 31.
    Day(u32),
    /// The `index`-th of the month's days that fall on one of `days`.
    Relative { days: DaySet, index: Index },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Never,
    Count(u32),
    /// The last local date that may hold an occurrence.
    Until(NaiveDate),
}

impl Rule {
    /// Drops what does not change an occurrence, so equal rules are equal values.
    fn normalised(mut self) -> Self {
        if let Pattern::Weekly { first_day, .. } = &mut self.pattern
            && self.interval == 1
        {
            *first_day = Weekday::Mon;
        }
        self
    }
}

/// The week, Monday first, with RFC 5545's and Graph's names for each day.
const WEEK: [(Weekday, &str, &str); 7] = [
    (Weekday::Mon, "MO", "monday"),
    (Weekday::Tue, "TU", "tuesday"),
    (Weekday::Wed, "WE", "wednesday"),
    (Weekday::Thu, "TH", "thursday"),
    (Weekday::Fri, "FR", "friday"),
    (Weekday::Sat, "SA", "saturday"),
    (Weekday::Sun, "SU", "sunday"),
];

fn rfc_day(code: &str) -> Option<Weekday> {
    WEEK.iter().find(|(_, rfc, _)| *rfc == code).map(|(day, _, _)| *day)
}

fn rfc_code(day: Weekday) -> &'static str {
    WEEK[day.num_days_from_monday() as usize].1
}

/// Graph's documentation writes `Monday` in requests and returns `monday`; both are read.
fn graph_day(name: &str) -> Option<Weekday> {
    WEEK.iter().find(|(_, _, graph)| graph.eq_ignore_ascii_case(name)).map(|(day, _, _)| *day)
}

fn graph_name(day: Weekday) -> &'static str {
    WEEK[day.num_days_from_monday() as usize].2
}

/// A set of weekdays; iterates Monday first, which is the canonical order on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DaySet(u8);

impl DaySet {
    fn of(days: impl IntoIterator<Item = Weekday>) -> Self {
        DaySet(days.into_iter().fold(0, |set, day| set | (1 << day.num_days_from_monday())))
    }

    fn iter(self) -> impl Iterator<Item = Weekday> {
        WEEK.iter().map(|(day, _, _)| *day).filter(move |day| self.0 & (1 << day.num_days_from_monday()) != 0)
    }

    fn len(self) -> u32 {
        self.0.count_ones()
    }

    fn rfc(self) -> String {
        self.iter().map(rfc_code).collect::<Vec<_>>().join(",")
    }

    fn graph(self) -> Value {
        self.iter().map(graph_name).collect()
    }
}

/// Which of the matching days in the month: Graph's `index`, RFC 5545's ordinal or BYSETPOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

const INDEXES: [(Index, i32, &str); 5] = [
    (Index::First, 1, "first"),
    (Index::Second, 2, "second"),
    (Index::Third, 3, "third"),
    (Index::Fourth, 4, "fourth"),
    (Index::Last, -1, "last"),
];

impl Index {
    fn from_ordinal(n: i32) -> Option<Self> {
        INDEXES.iter().find(|(_, ordinal, _)| *ordinal == n).map(|(index, _, _)| *index)
    }

    fn from_graph(name: &str) -> Option<Self> {
        INDEXES.iter().find(|(_, _, graph)| graph.eq_ignore_ascii_case(name)).map(|(index, _, _)| *index)
    }

    fn entry(self) -> (Index, i32, &'static str) {
        INDEXES[self as usize]
    }

    fn ordinal(self) -> i32 {
        self.entry().1
    }

    fn graph(self) -> &'static str {
        self.entry().2
    }
}

fn unsupported(reason: impl fmt::Display) -> Unsupported {
    Unsupported(reason.to_string())
}

/// Reads all lines: at most one RRULE, any number of EXDATE lines.
fn parse(lines: &[String], start: &SeriesStart) -> Result<(Option<Rule>, Vec<NaiveDateTime>), Unsupported> {
    let mut rule = None;
    let mut excluded = Vec::new();
    for line in lines.iter().map(|line| line.trim()).filter(|line| !line.is_empty()) {
        let content = ContentLine::split(line)?;
        match content.name.as_str() {
            "RRULE" if rule.is_some() => {
                return Err(unsupported("Graph cannot combine several rules in one series (more than one RRULE)"));
            }
            "RRULE" => rule = Some(parse_rrule(content.value, start)?),
            "EXDATE" => excluded.extend(parse_exdate(&content, start)?),
            "RDATE" => return Err(unsupported(format!("Graph cannot add single dates to a series ({line})"))),
            "EXRULE" => return Err(unsupported(format!("Graph cannot exclude dates by a rule ({line})"))),
            name => return Err(unsupported(format!("{name} is not a recurrence line ({line})"))),
        }
    }
    if rule.is_none() && !excluded.is_empty() {
        return Err(unsupported("EXDATE without an RRULE: there is no series to exclude dates from"));
    }
    excluded.sort();
    excluded.dedup();
    Ok((rule, excluded))
}

/// A content line, `NAME;PARAM=VALUE;…:VALUE`.
struct ContentLine<'a> {
    /// Upper-cased.
    name: String,
    /// Keys upper-cased, quotes removed.
    params: Vec<(String, String)>,
    value: &'a str,
}

impl<'a> ContentLine<'a> {
    /// Splits at the first `:` and `;` outside quotes: a quoted parameter value may hold both.
    fn split(line: &'a str) -> Result<Self, Unsupported> {
        let mut quoted = false;
        let mut fields = Vec::new();
        let mut from = 0;
        for (at, c) in line.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ';' | ':' if !quoted => {
                    fields.push(&line[from..at]);
                    from = at + 1;
                    if c == ':' {
                        let name = fields[0].to_ascii_uppercase();
                        let params = fields[1..]
                            .iter()
                            .map(|param| {
                                let (key, value) = param
                                    .split_once('=')
                                    .ok_or_else(|| unsupported(format!("Malformed parameter {param:?} in {line:?}")))?;
                                Ok((key.to_ascii_uppercase(), value.trim_matches('"').to_owned()))
                            })
                            .collect::<Result<_, Unsupported>>()?;
                        return Ok(ContentLine { name, params, value: &line[from..] });
                    }
                }
                _ => {}
            }
        }
        Err(unsupported(format!("Malformed recurrence line {line:?} (no ':')")))
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// One `KEY=VALUE,VALUE` part of an RRULE, kept as written (upper-cased) for error messages.
struct Part<T> {
    text: String,
    values: Vec<T>,
}

impl<T> Part<T> {
    fn parse(text: &str, list: &str, value: impl Fn(&str) -> Option<T>) -> Result<Self, Unsupported> {
        let values = list
            .split(',')
            .map(|item| value(item).ok_or_else(|| unsupported(format!("Malformed value {item:?} in {text}"))))
            .collect::<Result<_, _>>()?;
        Ok(Part { text: text.to_owned(), values })
    }

    /// The only value, or a refusal saying there were several.
    fn single(&self, several: &str) -> Result<&T, Unsupported> {
        match self.values.as_slice() {
            [value] => Ok(value),
            _ => Err(unsupported(format!("Graph cannot repeat on more than one {several} ({})", self.text))),
        }
    }
}

/// A BYDAY entry: `MO`, `2TU`, `-1FR`.
#[derive(Clone, Copy)]
struct ByDay {
    ordinal: Option<i32>,
    day: Weekday,
}

fn by_day(item: &str) -> Option<ByDay> {
    let split = item.len().checked_sub(2)?;
    let day = rfc_day(item.get(split..)?)?;
    let ordinal = match &item[..split] {
        "" => None,
        n => Some(n.parse::<i32>().ok().filter(|n| (1..=53).contains(&n.abs()))?),
    };
    Some(ByDay { ordinal, day })
}

fn number_in(range: std::ops::RangeInclusive<i32>, allow_negative: bool) -> impl Fn(&str) -> Option<i32> {
    move |item: &str| {
        let n = item.parse::<i32>().ok()?;
        (range.contains(&n) || allow_negative && range.contains(&-n)).then_some(n)
    }
}

/// Everything an RRULE may say, before it is checked against what Graph can express.
#[derive(Default)]
struct RRule {
    freq: Option<String>,
    interval: Option<u32>,
    count: Option<u32>,
    until: Option<String>,
    by_day: Option<Part<ByDay>>,
    by_month_day: Option<Part<i32>>,
    by_month: Option<Part<i32>>,
    by_set_pos: Option<Part<i32>>,
    wkst: Option<Weekday>,
}

fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), Unsupported> {
    if slot.replace(value).is_some() {
        return Err(unsupported(format!("Malformed RRULE: {key} is given twice")));
    }
    Ok(())
}

/// INTERVAL and COUNT: positive, and within Graph's Int32.
fn positive(text: &str, value: &str) -> Result<u32, Unsupported> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=i32::MAX as u32).contains(n))
        .ok_or_else(|| unsupported(format!("Malformed RRULE: {text} is not a positive number")))
}

fn parse_rrule(value: &str, start: &SeriesStart) -> Result<Rule, Unsupported> {
    let value = value.trim().to_ascii_uppercase();
    let mut r = RRule::default();
    for text in value.split(';').filter(|part| !part.is_empty()) {
        let (key, value) =
            text.split_once('=').ok_or_else(|| unsupported(format!("Malformed RRULE part {text:?} (no '=')")))?;
        match key {
            "FREQ" => once(&mut r.freq, key, value.to_owned())?,
            "INTERVAL" => once(&mut r.interval, key, positive(text, value)?)?,
            "COUNT" => once(&mut r.count, key, positive(text, value)?)?,
            "UNTIL" => once(&mut r.until, key, value.to_owned())?,
            "BYDAY" => once(&mut r.by_day, key, Part::parse(text, value, by_day)?)?,
            "BYMONTHDAY" => once(&mut r.by_month_day, key, Part::parse(text, value, number_in(1..=31, true))?)?,
            "BYMONTH" => once(&mut r.by_month, key, Part::parse(text, value, number_in(1..=12, false))?)?,
            "BYSETPOS" => once(&mut r.by_set_pos, key, Part::parse(text, value, number_in(1..=366, true))?)?,
            "WKST" => {
                let day = rfc_day(value).ok_or_else(|| unsupported(format!("Malformed RRULE: {text}")))?;
                once(&mut r.wkst, key, day)?
            }
            "BYHOUR" | "BYMINUTE" | "BYSECOND" => {
                return Err(unsupported(format!("Graph cannot repeat at set times of day ({text})")));
            }
            "BYWEEKNO" => {
                return Err(unsupported(format!("Graph cannot repeat in numbered weeks of the year ({text})")));
            }
            "BYYEARDAY" => {
                return Err(unsupported(format!("Graph cannot repeat on numbered days of the year ({text})")));
            }
            _ => return Err(unsupported(format!("Unknown RRULE part {key} ({text})"))),
        }
    }
    let freq = r.freq.take().ok_or_else(|| unsupported(format!("Malformed RRULE: no FREQ in {value:?}")))?;
    let interval = r.interval.unwrap_or(1);
    let end = match (r.count, &r.until) {
        (Some(_), Some(_)) => {
            return Err(unsupported("A rule cannot end both after a number of times and on a date (COUNT and UNTIL)"));
        }
        (Some(count), None) => End::Count(count),
        (None, Some(until)) => End::Until(until_date(until, start)?),
        (None, None) => End::Never,
    };
    let pattern = match freq.as_str() {
        "DAILY" => daily(&r, interval)?,
        "WEEKLY" => weekly(&r, start)?,
        "MONTHLY" => {
            refuse_with(&freq, [r.by_month.as_ref().map(|p| &p.text)])?;
            Pattern::Monthly(in_month(&r, start.date.day(), "month")?)
        }
        "YEARLY" => yearly(&r, start)?,
        "SECONDLY" | "MINUTELY" | "HOURLY" => {
            return Err(unsupported(format!("Graph cannot repeat a series more often than daily (FREQ={freq})")));
        }
        _ => return Err(unsupported(format!("Malformed RRULE: unknown FREQ={freq}"))),
    };
    Ok(Rule { interval, pattern, end }.normalised())
}

/// Refuses the parts that are present but mean nothing to Graph with this FREQ.
fn refuse_with<'a>(freq: &str, parts: impl IntoIterator<Item = Option<&'a String>>) -> Result<(), Unsupported> {
    match parts.into_iter().flatten().next() {
        Some(text) => Err(unsupported(format!("Graph cannot combine FREQ={freq} with {text}"))),
        None => Ok(()),
    }
}

/// Plain weekdays of BYDAY, refusing numbered ones (`2MO`), which only months and years have.
fn plain_days(part: &Part<ByDay>, series: &str) -> Result<DaySet, Unsupported> {
    if part.values.iter().any(|d| d.ordinal.is_some()) {
        return Err(unsupported(format!(
            "Graph cannot repeat on a numbered weekday in a {series} series ({})",
            part.text
        )));
    }
    Ok(DaySet::of(part.values.iter().map(|d| d.day)))
}

/// DAILY. With BYDAY (every day, but only on these weekdays) and an INTERVAL of 1 it is the weekly
/// rule on those days, so it is read as one; with a longer INTERVAL Graph has nothing like it.
fn daily(r: &RRule, interval: u32) -> Result<Pattern, Unsupported> {
    refuse_with("DAILY", [&r.by_month, &r.by_month_day, &r.by_set_pos].map(|p| p.as_ref().map(|p| &p.text)))?;
    let Some(by_day) = &r.by_day else { return Ok(Pattern::Daily) };
    let days = plain_days(by_day, "daily")?;
    if interval > 1 {
        return Err(unsupported(format!(
            "Graph cannot repeat every {interval} days on certain weekdays only (INTERVAL={interval} with {})",
            by_day.text
        )));
    }
    Ok(Pattern::Weekly { days, first_day: Weekday::Mon })
}

fn weekly(r: &RRule, start: &SeriesStart) -> Result<Pattern, Unsupported> {
    refuse_with("WEEKLY", [&r.by_month, &r.by_month_day, &r.by_set_pos].map(|p| p.as_ref().map(|p| &p.text)))?;
    let days = match &r.by_day {
        Some(by_day) => plain_days(by_day, "weekly")?,
        None => DaySet::of([start.date.weekday()]),
    };
    Ok(Pattern::Weekly { days, first_day: r.wkst.unwrap_or(Weekday::Mon) })
}

fn yearly(r: &RRule, start: &SeriesStart) -> Result<Pattern, Unsupported> {
    if let Some(by_month) = &r.by_month {
        let month = *by_month.single("month of the year")? as u32;
        return Ok(Pattern::Yearly { month, on: in_month(r, start.date.day(), "month")? });
    }
    if let Some(by_month_day) = &r.by_month_day {
        return Err(unsupported(format!(
            "Graph cannot repeat a yearly series on a day of every month ({} without BYMONTH)",
            by_month_day.text
        )));
    }
    match in_month(r, start.date.day(), "year")? {
        InMonth::Day(day) => Ok(Pattern::Yearly { month: start.date.month(), on: InMonth::Day(day) }),
        // Without BYMONTH the position counts through the whole year. Every weekday comes at
        // least four times in January and December, so the first to fourth of the year are in
        // January and the last is in December.
        InMonth::Relative { days, index } => {
            let month = if index == Index::Last { 12 } else { 1 };
            Ok(Pattern::Yearly { month, on: InMonth::Relative { days, index } })
        }
    }
}

/// BYMONTHDAY, BYDAY and BYSETPOS of a monthly rule, or of a yearly one within its month;
/// neither given means the start's day of the month. `scope` names what positions count in.
fn in_month(r: &RRule, start_day: u32, scope: &str) -> Result<InMonth, Unsupported> {
    match (&r.by_day, &r.by_month_day, &r.by_set_pos) {
        (None, _, Some(set_pos)) => {
            Err(unsupported(format!("Graph can pick by position only among weekdays ({} without BYDAY)", set_pos.text)))
        }
        (Some(by_day), Some(by_month_day), _) => Err(unsupported(format!(
            "Graph cannot repeat on a weekday and a day of the month at once ({};{})",
            by_day.text, by_month_day.text
        ))),
        (None, Some(by_month_day), None) => {
            let day = *by_month_day.single("day of the month")?;
            if day < 0 {
                return Err(unsupported(format!(
                    "Graph cannot count days from the end of the month ({})",
                    by_month_day.text
                )));
            }
            Ok(InMonth::Day(day as u32))
        }
        (None, None, None) => Ok(InMonth::Day(start_day)),
        (Some(by_day), None, Some(set_pos)) => {
            if by_day.values.iter().any(|d| d.ordinal.is_some()) {
                return Err(unsupported(format!(
                    "Graph cannot pick by position among numbered weekdays ({};{})",
                    by_day.text, set_pos.text
                )));
            }
            let days = DaySet::of(by_day.values.iter().map(|d| d.day));
            let position = *set_pos.single(&format!("position among the weekdays of the {scope}"))?;
            let index = Index::from_ordinal(position).ok_or_else(|| {
                unsupported(format!(
                    "Graph can only pick the first to fourth or the last matching day of the {scope} ({})",
                    set_pos.text
                ))
            })?;
            Ok(InMonth::Relative { days, index })
        }
        (Some(by_day), None, None) => {
            let every = || {
                unsupported(format!(
                    "Graph cannot repeat on every one of these weekdays in the {scope}, only on one picked by \
                     position ({})",
                    by_day.text
                ))
            };
            if by_day.values.iter().all(|d| d.ordinal.is_none()) {
                return Err(every());
            }
            let ByDay { ordinal, day } = *by_day.single(&format!("weekday of the {scope}"))?;
            let ordinal = ordinal.ok_or_else(every)?;
            let index = Index::from_ordinal(ordinal).ok_or_else(|| {
                unsupported(format!(
                    "Graph can only repeat on the first to fourth or the last weekday of the {scope} ({})",
                    by_day.text
                ))
            })?;
            Ok(InMonth::Relative { days: DaySet::of([day]), index })
        }
    }
}

/// UNTIL (`20270401`, `20270401T080000Z`, or floating `20270401T100000` in the series' zone)
/// -> the last local date whose occurrence is not after it (module docs). A bare date is that
/// whole day, as calendars that write it mean it.
fn until_date(value: &str, start: &SeriesStart) -> Result<NaiveDate, Unsupported> {
    let malformed = || unsupported(format!("Malformed RRULE: UNTIL={value} is not a date or a date-time"));
    let end = if let Ok(date) = NaiveDate::parse_from_str(value, "%Y%m%d") {
        date
    } else {
        let local = match value.strip_suffix('Z') {
            Some(utc) => NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
                .map_err(|_| malformed())?
                .and_utc()
                .with_timezone(&start.zone)
                .naive_local(),
            None => NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").map_err(|_| malformed())?,
        };
        if local.time() >= start.time { local.date() } else { local.date().pred_opt().ok_or_else(malformed)? }
    };
    if end < start.date {
        return Err(unsupported(format!("The rule ends (UNTIL={value}) before the series starts on {}", start.date)));
    }
    Ok(end)
}

/// EXDATE values as local times in the series' zone. A date alone (`VALUE=DATE`) in a timed
/// series means that day's occurrence, at the series' start time; in an all-day series every
/// value is that day at midnight.
fn parse_exdate(line: &ContentLine, start: &SeriesStart) -> Result<Vec<NaiveDateTime>, Unsupported> {
    let date_only = line.param("VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    let zone = match line.param("TZID") {
        Some(name) => {
            Some(name.parse::<Tz>().map_err(|_| unsupported(format!("Unknown time zone TZID={name} in EXDATE")))?)
        }
        None => None,
    };
    line.value
        .split(',')
        .map(|item| {
            let item = item.trim();
            let malformed = || unsupported(format!("Malformed EXDATE value {item:?}"));
            let local = if date_only || item.len() == 8 {
                NaiveDate::parse_from_str(item, "%Y%m%d").map_err(|_| malformed())?.and_time(start.time)
            } else if let Some(utc) = item.strip_suffix('Z') {
                let utc = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").map_err(|_| malformed())?;
                utc.and_utc().with_timezone(&start.zone).naive_local()
            } else {
                let local = NaiveDateTime::parse_from_str(item, "%Y%m%dT%H%M%S").map_err(|_| malformed())?;
                match zone {
                    Some(zone) if zone != start.zone => {
                        local_instant(zone, local).with_timezone(&start.zone).naive_local()
                    }
                    _ => local,
                }
            };
            Ok(if start.all_day { local.date().and_time(NaiveTime::MIN) } else { local })
        })
        .collect()
}

/// A local wall time as an instant. Twice on the night the clocks go back: the later, so an
/// UNTIL at that time keeps both. Skipped when they go forward: RFC 5545 moves such a time on
/// by the gap, which is the wall time read with the offset from before the gap.
fn local_instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
        LocalResult::None => {
            let before = zone.offset_from_utc_datetime(&(local - Duration::days(1))).fix();
            (local - Duration::seconds(i64::from(before.local_minus_utc()))).and_utc()
        }
    }
}

fn write_rrule(rule: &Rule, start: &SeriesStart) -> String {
    let freq = match rule.pattern {
        Pattern::Daily => "DAILY",
        Pattern::Weekly { .. } => "WEEKLY",
        Pattern::Monthly(_) => "MONTHLY",
        Pattern::Yearly { .. } => "YEARLY",
    };
    let mut parts = vec![format!("FREQ={freq}")];
    if rule.interval > 1 {
        parts.push(format!("INTERVAL={}", rule.interval));
    }
    match rule.end {
        End::Never => {}
        End::Count(count) => parts.push(format!("COUNT={count}")),
        End::Until(date) if start.all_day => parts.push(format!("UNTIL={}", date.format("%Y%m%d"))),
        End::Until(date) => {
            let until = local_instant(start.zone, date.and_time(start.time));
            parts.push(format!("UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
        }
    }
    match rule.pattern {
        Pattern::Daily => {}
        Pattern::Weekly { days, first_day } => {
            parts.push(format!("BYDAY={}", days.rfc()));
            if first_day != Weekday::Mon {
                parts.push(format!("WKST={}", rfc_code(first_day)));
            }
        }
        Pattern::Monthly(on) => write_in_month(&mut parts, on),
        Pattern::Yearly { month, on } => {
            parts.push(format!("BYMONTH={month}"));
            write_in_month(&mut parts, on);
        }
    }
    format!("RRULE:{}", parts.join(";"))
}

fn write_in_month(parts: &mut Vec<String>, on: InMonth) {
    match on {
        InMonth::Day(day) => parts.push(format!("BYMONTHDAY={day}")),
        InMonth::Relative { days, index } if days.len() == 1 => {
            parts.push(format!("BYDAY={}{}", index.ordinal(), days.rfc()));
        }
        InMonth::Relative { days, index } => {
            parts.push(format!("BYDAY={}", days.rfc()));
            parts.push(format!("BYSETPOS={}", index.ordinal()));
        }
    }
}

/// The rule as Graph documents it: only the properties the pattern and range types use, since
/// Graph validates even the ones it ignores.
fn graph_json(rule: &Rule, start: &SeriesStart) -> Value {
    let interval = rule.interval;
    let pattern = match rule.pattern {
        Pattern::Daily => json!({"type": "daily", "interval": interval}),
        Pattern::Weekly { days, first_day } => json!({
            "type": "weekly", "interval": interval, "daysOfWeek": days.graph(), "firstDayOfWeek": graph_name(first_day),
        }),
        Pattern::Monthly(InMonth::Day(day)) => {
            json!({"type": "absoluteMonthly", "interval": interval, "dayOfMonth": day})
        }
        Pattern::Monthly(InMonth::Relative { days, index }) => json!({
            "type": "relativeMonthly", "interval": interval, "daysOfWeek": days.graph(), "index": index.graph(),
        }),
        Pattern::Yearly { month, on: InMonth::Day(day) } => {
            json!({"type": "absoluteYearly", "interval": interval, "dayOfMonth": day, "month": month})
        }
        Pattern::Yearly { month, on: InMonth::Relative { days, index } } => json!({
            "type": "relativeYearly", "interval": interval, "daysOfWeek": days.graph(), "index": index.graph(),
            "month": month,
        }),
    };
    let start_date = start.date.format("%Y-%m-%d").to_string();
    let zone = start.zone.name();
    let range = match rule.end {
        End::Never => json!({"type": "noEnd", "startDate": start_date, "recurrenceTimeZone": zone}),
        End::Count(count) => json!({
            "type": "numbered", "startDate": start_date, "numberOfOccurrences": count, "recurrenceTimeZone": zone,
        }),
        End::Until(date) => json!({
            "type": "endDate", "startDate": start_date, "endDate": date.format("%Y-%m-%d").to_string(),
            "recurrenceTimeZone": zone,
        }),
    };
    json!({"pattern": pattern, "range": range})
}

/// Reads only the properties the pattern and range types use: Graph returns all of them, the
/// rest with placeholder values (`"dayOfMonth": 0`, `"endDate": "0001-01-01"`).
fn read_graph(recurrence: &Value) -> Result<Rule, Unsupported> {
    let object = |key: &str| {
        recurrence
            .get(key)
            .filter(|v| v.is_object())
            .ok_or_else(|| unsupported(format!("Graph recurrence without a {key}: {recurrence}")))
    };
    let (pattern, range) = (object("pattern")?, object("range")?);
    let text = |from: &Value, key: &str| from.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = |key: &str, valid: std::ops::RangeInclusive<u64>| {
        pattern
            .get(key)
            .and_then(Value::as_u64)
            .filter(|n| valid.contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| unsupported(format!("Graph recurrence pattern without a valid {key}: {pattern}")))
    };
    let days = || {
        let names = pattern.get("daysOfWeek").and_then(Value::as_array).filter(|names| !names.is_empty());
        let names =
            names.ok_or_else(|| unsupported(format!("Graph recurrence pattern without daysOfWeek: {pattern}")))?;
        let days = names.iter().map(|name| {
            name.as_str()
                .and_then(graph_day)
                .ok_or_else(|| unsupported(format!("Unknown day {name} in Graph recurrence")))
        });
        Ok::<_, Unsupported>(DaySet::of(days.collect::<Result<Vec<_>, _>>()?))
    };
    // Graph's documented defaults: `first` and `sunday`.
    let index = || match text(pattern, "index") {
        None => Ok(Index::First),
        Some(name) => {
            Index::from_graph(&name).ok_or_else(|| unsupported(format!("Unknown index {name:?} in Graph recurrence")))
        }
    };
    let first_day = || match text(pattern, "firstDayOfWeek") {
        None => Ok(Weekday::Sun),
        Some(name) => {
            graph_day(&name).ok_or_else(|| unsupported(format!("Unknown firstDayOfWeek {name:?} in Graph recurrence")))
        }
    };
    let kind = text(pattern, "type").unwrap_or_default();
    let shape = match kind.to_ascii_lowercase().as_str() {
        "daily" => Pattern::Daily,
        "weekly" => Pattern::Weekly { days: days()?, first_day: first_day()? },
        "absolutemonthly" => Pattern::Monthly(InMonth::Day(number("dayOfMonth", 1..=31)?)),
        "relativemonthly" => Pattern::Monthly(InMonth::Relative { days: days()?, index: index()? }),
        "absoluteyearly" => {
            Pattern::Yearly { month: number("month", 1..=12)?, on: InMonth::Day(number("dayOfMonth", 1..=31)?) }
        }
        "relativeyearly" => Pattern::Yearly {
            month: number("month", 1..=12)?,
            on: InMonth::Relative { days: days()?, index: index()? },
        },
        _ => return Err(unsupported(format!("Unknown Graph recurrence pattern type {kind:?}"))),
    };
    let interval = number("interval", 1..=i32::MAX as u64)?;
    let kind = text(range, "type").unwrap_or_default();
    let end = match kind.to_ascii_lowercase().as_str() {
        "noend" => End::Never,
        "numbered" => End::Count(
            range
                .get("numberOfOccurrences")
                .and_then(Value::as_u64)
                .filter(|n| (1..=i32::MAX as u64).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    unsupported(format!("Graph numbered range without a valid numberOfOccurrences: {range}"))
                })?,
        ),
        "enddate" => End::Until(
            text(range, "endDate")
                .and_then(|date| NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok())
                .ok_or_else(|| unsupported(format!("Graph endDate range without a valid endDate: {range}")))?,
        ),
        _ => return Err(unsupported(format!("Unknown Graph recurrence range type {kind:?}"))),
    };
    Ok(Rule { interval, pattern: shape, end }.normalised())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(date: &str, time: &str, zone: Tz) -> SeriesStart {
        SeriesStart {
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            time: NaiveTime::parse_from_str(time, "%H:%M").unwrap(),
            zone,
            all_day: false,
        }
    }

    fn all_day(date: &str, zone: Tz) -> SeriesStart {
        SeriesStart { all_day: true, ..start(date, "00:00", zone) }
    }

    /// Monday 1 March 2027, 10:00 in Berlin.
    fn berlin() -> SeriesStart {
        start("2027-03-01", "10:00", Tz::Europe__Berlin)
    }

    fn lines(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|line| line.to_string()).collect()
    }

    fn local(at: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M").unwrap()
    }

    fn graph(rule: &str, start: &SeriesStart) -> Value {
        let (graph, excluded) = to_graph(&lines(&[rule]), start).unwrap();
        assert!(excluded.is_empty());
        graph
    }

    fn rrule(recurrence: Value, start: &SeriesStart) -> String {
        let lines = from_graph(&recurrence, start).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.into_iter().next().unwrap()
    }

    fn refusal(rule: &[&str], start: &SeriesStart) -> String {
        let Err(Unsupported(reason)) = to_graph(&lines(rule), start) else { panic!("{rule:?} should be refused") };
        reason
    }

    #[test]
    fn google_example_lines() {
        let example = lines(&["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10", "EXDATE;TZID=Europe/Berlin:20270322T100000"]);
        let (recurrence, excluded) = to_graph(&example, &berlin()).unwrap();
        assert_eq!(
            recurrence,
            json!({
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                "range": {"type": "numbered", "startDate": "2027-03-01", "numberOfOccurrences": 10,
                          "recurrenceTimeZone": "Europe/Berlin"},
            })
        );
        assert_eq!(excluded, [local("2027-03-22T10:00")]);
        assert_eq!(from_graph(&recurrence, &berlin()).unwrap(), ["RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO"]);
        assert_eq!(canonical(&example, &berlin()).unwrap(), ["RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO"]);
    }

    /// Microsoft's examples ("Schedule repeating appointments as recurring events in Outlook"),
    /// as written there (capitalised day names, no firstDayOfWeek), with a range each.
    #[test]
    fn graph_documented_patterns_read_as_rfc5545() {
        let s = berlin();
        let noend = json!({"type": "noEnd", "startDate": "2027-03-01"});
        let cases = [
            (json!({"type": "daily", "interval": 1}), "RRULE:FREQ=DAILY"),
            (json!({"type": "daily", "interval": 3}), "RRULE:FREQ=DAILY;INTERVAL=3"),
            (json!({"type": "weekly", "interval": 1, "daysOfWeek": ["Thursday"]}), "RRULE:FREQ=WEEKLY;BYDAY=TH"),
            (
                json!({"type": "weekly", "interval": 2, "daysOfWeek": ["Monday", "Tuesday"]}),
                "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TU;WKST=SU",
            ),
            (json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}), "RRULE:FREQ=MONTHLY;BYMONTHDAY=15"),
            (
                json!({"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 7}),
                "RRULE:FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=7",
            ),
            (
                json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["Wednesday"], "index": "second"}),
                "RRULE:FREQ=MONTHLY;BYDAY=2WE",
            ),
            (
                json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["Thursday", "Friday"], "index": "first"}),
                "RRULE:FREQ=MONTHLY;BYDAY=TH,FR;BYSETPOS=1",
            ),
            (
                json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 15, "month": 4}),
                "RRULE:FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=15",
            ),
            (
                json!({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["Wednesday"], "index": "last", "month": 11}),
                "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=-1WE",
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(rrule(json!({"pattern": pattern, "range": noend}), &s), expected, "{pattern}");
        }
    }

    #[test]
    fn graph_documented_ranges_read_as_rfc5545() {
        let s = start("2017-04-02", "09:00", Tz::Europe__Berlin);
        let daily = json!({"type": "daily", "interval": 1});
        let numbered = json!({"type": "numbered", "startDate": "2017-04-02", "numberOfOccurrences": 10});
        assert_eq!(rrule(json!({"pattern": daily, "range": numbered}), &s), "RRULE:FREQ=DAILY;COUNT=10");
        // 31 July 2017, 09:00 summer time in Berlin.
        let end_date = json!({"type": "endDate", "startDate": "2017-07-01", "endDate": "2017-07-31"});
        assert_eq!(rrule(json!({"pattern": daily, "range": end_date}), &s), "RRULE:FREQ=DAILY;UNTIL=20170731T070000Z");
        let noend = json!({"type": "noEnd", "startDate": "2017-05-15"});
        assert_eq!(rrule(json!({"pattern": daily, "range": noend}), &s), "RRULE:FREQ=DAILY");
    }

    /// The two complete examples of Microsoft's guide, both ways.
    #[test]
    fn graph_documented_series_both_ways() {
        // 13:00 to 13:30 every Monday from 4 September 2017 to the end of the year.
        let s = start("2017-09-04", "13:00", Tz::America__Los_Angeles);
        let documented = json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday"]},
            "range": {"type": "endDate", "startDate": "2017-09-04", "endDate": "2017-12-31"},
        });
        let rule = rrule(documented, &s);
        assert_eq!(rule, "RRULE:FREQ=WEEKLY;UNTIL=20171231T210000Z;BYDAY=MO");
        assert_eq!(
            graph(&rule, &s),
            json!({
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                "range": {"type": "endDate", "startDate": "2017-09-04", "endDate": "2017-12-31",
                          "recurrenceTimeZone": "America/Los_Angeles"},
            })
        );

        // 14:00 on the first Thursday of every other month from 29 August 2017.
        let s = start("2017-08-29", "14:00", Tz::America__Los_Angeles);
        let documented = json!({
            "pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["Thursday"], "index": "first"},
            "range": {"type": "noEnd", "startDate": "2017-08-29"},
        });
        let rule = rrule(documented, &s);
        assert_eq!(rule, "RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=1TH");
        assert_eq!(
            graph(&rule, &s),
            json!({
                "pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["thursday"], "index": "first"},
                "range": {"type": "noEnd", "startDate": "2017-08-29", "recurrenceTimeZone": "America/Los_Angeles"},
            })
        );
    }

    /// Every pattern type as to_graph writes it.
    #[test]
    fn every_pattern_type_written_for_graph() {
        let s = berlin();
        let pattern = |rule: &str| graph(rule, &s)["pattern"].clone();
        assert_eq!(pattern("RRULE:FREQ=DAILY;INTERVAL=3"), json!({"type": "daily", "interval": 3}));
        assert_eq!(
            pattern("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TU;WKST=SU"),
            json!({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "tuesday"], "firstDayOfWeek": "sunday"})
        );
        assert_eq!(
            pattern("RRULE:FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=7"),
            json!({"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 7})
        );
        assert_eq!(
            pattern("RRULE:FREQ=MONTHLY;BYDAY=2WE"),
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["wednesday"], "index": "second"})
        );
        assert_eq!(
            pattern("RRULE:FREQ=MONTHLY;BYDAY=-1FR"),
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"})
        );
        assert_eq!(
            pattern("RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
            json!({"type": "relativeMonthly", "interval": 1,
                   "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "index": "last"})
        );
        assert_eq!(
            pattern("RRULE:FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=15"),
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 15, "month": 4})
        );
        assert_eq!(
            pattern("RRULE:FREQ=YEARLY;INTERVAL=3;BYMONTH=11;BYDAY=TH,FR;BYSETPOS=2"),
            json!({"type": "relativeYearly", "interval": 3, "daysOfWeek": ["thursday", "friday"], "index": "second",
                   "month": 11})
        );
    }

    #[test]
    fn every_range_type_written_for_graph() {
        let s = berlin();
        let range = |rule: &str| graph(rule, &s)["range"].clone();
        assert_eq!(
            range("RRULE:FREQ=DAILY"),
            json!({"type": "noEnd", "startDate": "2027-03-01", "recurrenceTimeZone": "Europe/Berlin"})
        );
        assert_eq!(
            range("RRULE:FREQ=DAILY;COUNT=5"),
            json!({"type": "numbered", "startDate": "2027-03-01", "numberOfOccurrences": 5,
                   "recurrenceTimeZone": "Europe/Berlin"})
        );
        // 10:00 on 1 April 2027 is 08:00 UTC (summer time).
        assert_eq!(
            range("RRULE:FREQ=DAILY;UNTIL=20270401T080000Z"),
            json!({"type": "endDate", "startDate": "2027-03-01", "endDate": "2027-04-01",
                   "recurrenceTimeZone": "Europe/Berlin"})
        );
        // A bare date is that whole day.
        assert_eq!(range("RRULE:FREQ=DAILY;UNTIL=20270401")["endDate"], "2027-04-01");
        // 09:00 on 1 April is before that day's 10:00 occurrence: the last one is on 31 March.
        assert_eq!(range("RRULE:FREQ=DAILY;UNTIL=20270401T070000Z")["endDate"], "2027-03-31");
    }

    /// What Graph returns: every property, unused ones with placeholders, a Windows zone name.
    #[test]
    fn graph_placeholders_are_ignored() {
        let returned = json!({
            "pattern": {"type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": ["monday"],
                        "firstDayOfWeek": "sunday", "index": "first"},
            "range": {"type": "noEnd", "startDate": "2027-03-01", "endDate": "0001-01-01",
                      "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 0},
        });
        assert_eq!(rrule(returned, &berlin()), "RRULE:FREQ=WEEKLY;BYDAY=MO");
        let returned = json!({
            "pattern": {"type": "absoluteMonthly", "interval": 1, "month": 0, "dayOfMonth": 24,
                        "firstDayOfWeek": "sunday", "index": "first"},
            "range": {"type": "endDate", "startDate": "2027-03-24", "endDate": "2028-02-24",
                      "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 0},
        });
        assert_eq!(rrule(returned, &berlin()), "RRULE:FREQ=MONTHLY;UNTIL=20280224T090000Z;BYMONTHDAY=24");
    }

    #[test]
    fn no_recurrence_is_null_both_ways() {
        assert_eq!(to_graph(&[], &berlin()).unwrap(), (Value::Null, Vec::new()));
        assert_eq!(from_graph(&Value::Null, &berlin()).unwrap(), Vec::<String>::new());
        assert_eq!(canonical(&[], &berlin()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn unsupported_rules_say_what_is_unsupported() {
        let s = berlin();
        let cases: &[(&[&str], &str)] = &[
            (&["RRULE:FREQ=HOURLY;INTERVAL=2"], "FREQ=HOURLY"),
            (&["RRULE:FREQ=MINUTELY"], "FREQ=MINUTELY"),
            (&["RRULE:FREQ=SECONDLY"], "FREQ=SECONDLY"),
            (&["RRULE:FREQ=DAILY;BYHOUR=9,17"], "BYHOUR=9,17"),
            (&["RRULE:FREQ=DAILY;BYMINUTE=30"], "BYMINUTE=30"),
            (&["RRULE:FREQ=DAILY;BYSECOND=0"], "BYSECOND=0"),
            (&["RRULE:FREQ=YEARLY;BYWEEKNO=20"], "BYWEEKNO=20"),
            (&["RRULE:FREQ=YEARLY;BYYEARDAY=100"], "BYYEARDAY=100"),
            (&["RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15"], "more than one day of the month (BYMONTHDAY=1,15)"),
            (&["RRULE:FREQ=MONTHLY;BYMONTHDAY=-1"], "end of the month (BYMONTHDAY=-1)"),
            (&["RRULE:FREQ=YEARLY;BYMONTH=1,7"], "more than one month of the year (BYMONTH=1,7)"),
            (&["RRULE:FREQ=YEARLY;BYMONTHDAY=15"], "BYMONTHDAY=15 without BYMONTH"),
            (&["RRULE:FREQ=WEEKLY;BYDAY=2MO"], "weekly series (BYDAY=2MO)"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=1MO,3MO"], "more than one weekday of the month (BYDAY=1MO,3MO)"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=1MO,TU"], "BYDAY=1MO,TU"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=5FR"], "BYDAY=5FR"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=-2FR"], "BYDAY=-2FR"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=MO,WE"], "in the month, only on one picked by position (BYDAY=MO,WE)"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5"], "BYSETPOS=5"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=2MO;BYSETPOS=1"], "numbered weekdays (BYDAY=2MO;BYSETPOS=1)"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1,-1"], "BYSETPOS=1,-1"),
            (&["RRULE:FREQ=MONTHLY;BYMONTHDAY=1;BYSETPOS=1"], "BYSETPOS=1 without BYDAY"),
            (&["RRULE:FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13"], "(BYDAY=FR;BYMONTHDAY=13)"),
            (&["RRULE:FREQ=MONTHLY;BYMONTH=3"], "FREQ=MONTHLY with BYMONTH=3"),
            (&["RRULE:FREQ=WEEKLY;BYMONTHDAY=3"], "FREQ=WEEKLY with BYMONTHDAY=3"),
            (&["RRULE:FREQ=DAILY;BYSETPOS=1"], "FREQ=DAILY with BYSETPOS=1"),
            (&["RRULE:FREQ=DAILY;INTERVAL=2;BYDAY=MO,FR"], "INTERVAL=2 with BYDAY=MO,FR"),
            (&["RRULE:FREQ=DAILY", "RDATE:20270310T100000Z"], "RDATE:20270310T100000Z"),
            (&["RRULE:FREQ=DAILY", "EXRULE:FREQ=WEEKLY;BYDAY=SA"], "EXRULE"),
            (&["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"], "more than one RRULE"),
            (&["EXDATE:20270322T090000Z"], "EXDATE without an RRULE"),
            (&["RRULE:FREQ=DAILY;COUNT=3;UNTIL=20270401"], "COUNT and UNTIL"),
            (&["RRULE:FREQ=DAILY;X-NAME=1"], "Unknown RRULE part X-NAME"),
            (&["RRULE:FREQ=DAILY;RSCALE=GREGORIAN"], "RSCALE"),
            (&["RRULE:FREQ=FORTNIGHTLY"], "FREQ=FORTNIGHTLY"),
            (&["RRULE:BYDAY=MO"], "no FREQ"),
            (&["RRULE:FREQ=DAILY;FREQ=WEEKLY"], "FREQ is given twice"),
            (&["RRULE:FREQ=DAILY;INTERVAL=0"], "INTERVAL=0"),
            (&["RRULE:FREQ=DAILY;COUNT=many"], "COUNT=MANY"),
            (&["RRULE:FREQ=WEEKLY;BYDAY=XX"], "\"XX\" in BYDAY=XX"),
            (&["RRULE:FREQ=MONTHLY;BYMONTHDAY=32"], "\"32\" in BYMONTHDAY=32"),
            (&["RRULE:FREQ=DAILY;UNTIL=2027-04-01"], "UNTIL=2027-04-01"),
            (&["RRULE:FREQ=DAILY;UNTIL=20270201"], "before the series starts"),
            (&["RRULE:FREQ;DAILY"], "\"FREQ\" (no '=')"),
            (&["RRULE FREQ=DAILY"], "no ':'"),
            (&["DTSTART:20270301T090000Z"], "DTSTART is not a recurrence line"),
            (&["RRULE:FREQ=DAILY", "EXDATE;TZID=Mars/Olympus:20270322T100000"], "TZID=Mars/Olympus"),
            (&["RRULE:FREQ=DAILY", "EXDATE:20270322T1000"], "\"20270322T1000\""),
        ];
        for (rule, expected) in cases {
            let reason = refusal(rule, &s);
            assert!(reason.contains(expected), "{rule:?}: {reason:?} should name {expected:?}");
        }
    }

    #[test]
    fn unsupported_graph_recurrences_say_why() {
        let s = berlin();
        let noend = json!({"type": "noEnd", "startDate": "2027-03-01"});
        let cases = [
            (json!({"pattern": {"type": "hourly", "interval": 1}, "range": noend}), "\"hourly\""),
            (json!({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": []}, "range": noend}), "daysOfWeek"),
            (json!({"pattern": {"type": "daily", "interval": 0}, "range": noend}), "interval"),
            (
                json!({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 0}, "range": noend}),
                "dayOfMonth",
            ),
            (
                json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered"}}),
                "numberOfOccurrences",
            ),
            (json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate"}}), "endDate"),
            (json!({"pattern": {"type": "daily", "interval": 1}}), "without a range"),
        ];
        for (recurrence, expected) in cases {
            let Err(Unsupported(reason)) = from_graph(&recurrence, &s) else {
                panic!("{recurrence} should be refused")
            };
            assert!(reason.contains(expected), "{recurrence}: {reason:?} should name {expected:?}");
        }
    }

    /// Canonical rules survive RFC 5545 -> Graph -> RFC 5545 unchanged, and Graph -> RFC 5545
    /// -> Graph gives the same JSON.
    #[test]
    fn canonical_rules_round_trip() {
        let timed = berlin();
        let day = all_day("2027-03-01", Tz::Europe__Berlin);
        let cases: &[(&str, &SeriesStart)] = &[
            ("RRULE:FREQ=DAILY", &timed),
            ("RRULE:FREQ=DAILY;INTERVAL=2", &timed),
            ("RRULE:FREQ=DAILY;COUNT=7", &timed),
            ("RRULE:FREQ=DAILY;UNTIL=20270315T090000Z", &timed),
            ("RRULE:FREQ=DAILY;UNTIL=20270315", &day),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO", &timed),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR", &timed),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", &day),
            ("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH", &timed),
            ("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU", &timed),
            ("RRULE:FREQ=WEEKLY;INTERVAL=3;COUNT=4;BYDAY=SA;WKST=SA", &day),
            ("RRULE:FREQ=WEEKLY;UNTIL=20271025T080000Z;BYDAY=MO", &timed),
            ("RRULE:FREQ=MONTHLY;BYMONTHDAY=1", &timed),
            ("RRULE:FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=31", &timed),
            ("RRULE:FREQ=MONTHLY;COUNT=12;BYDAY=2TU", &timed),
            ("RRULE:FREQ=MONTHLY;BYDAY=-1FR", &day),
            ("RRULE:FREQ=MONTHLY;BYDAY=4SU", &timed),
            ("RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1", &timed),
            ("RRULE:FREQ=MONTHLY;INTERVAL=2;UNTIL=20280101;BYDAY=SA,SU;BYSETPOS=-1", &day),
            ("RRULE:FREQ=MONTHLY;BYDAY=TH,FR;BYSETPOS=3", &timed),
            ("RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1", &timed),
            ("RRULE:FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", &day),
            ("RRULE:FREQ=YEARLY;COUNT=5;BYMONTH=11;BYDAY=4TH", &timed),
            ("RRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO", &day),
            ("RRULE:FREQ=YEARLY;UNTIL=20350301T090000Z;BYMONTH=9;BYDAY=MO,TU;BYSETPOS=2", &timed),
            ("RRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=12;BYDAY=SA,SU;BYSETPOS=4", &timed),
        ];
        for (rule, start) in cases {
            let line = lines(&[rule]);
            assert_eq!(canonical(&line, start).unwrap(), line, "canonical({rule})");
            let (recurrence, _) = to_graph(&line, start).unwrap();
            let back = from_graph(&recurrence, start).unwrap();
            assert_eq!(back, line, "{rule} -> {recurrence}");
            assert_eq!(to_graph(&back, start).unwrap().0, recurrence, "{rule}");
        }
    }

    #[test]
    fn rules_written_by_hand_get_their_canonical_form() {
        let s = berlin();
        let cases = [
            // What the rule leaves to the start: Monday the 1st of March.
            ("RRULE:FREQ=WEEKLY", "RRULE:FREQ=WEEKLY;BYDAY=MO"),
            ("RRULE:FREQ=MONTHLY", "RRULE:FREQ=MONTHLY;BYMONTHDAY=1"),
            ("RRULE:FREQ=YEARLY", "RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1"),
            ("RRULE:FREQ=YEARLY;BYMONTH=7", "RRULE:FREQ=YEARLY;BYMONTH=7;BYMONTHDAY=1"),
            // Order, case, defaults and equivalent spellings.
            ("rrule:byday=fr,mo;freq=weekly;interval=1", "RRULE:FREQ=WEEKLY;BYDAY=MO,FR"),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO;WKST=SU", "RRULE:FREQ=WEEKLY;BYDAY=MO"),
            ("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;WKST=MO", "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO,MO", "RRULE:FREQ=WEEKLY;BYDAY=MO"),
            ("RRULE:FREQ=MONTHLY;BYDAY=WE;BYSETPOS=2", "RRULE:FREQ=MONTHLY;BYDAY=2WE"),
            ("RRULE:FREQ=MONTHLY;BYDAY=+2WE", "RRULE:FREQ=MONTHLY;BYDAY=2WE"),
            ("RRULE:FREQ=MONTHLY;BYMONTHDAY=+5", "RRULE:FREQ=MONTHLY;BYMONTHDAY=5"),
            ("RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
            ("RRULE:FREQ=DAILY;WKST=SU;", "RRULE:FREQ=DAILY"),
            // Positions counted through the year fall in January, or December for the last.
            ("RRULE:FREQ=YEARLY;BYDAY=-1FR", "RRULE:FREQ=YEARLY;BYMONTH=12;BYDAY=-1FR"),
            ("RRULE:FREQ=YEARLY;BYDAY=MO,TU;BYSETPOS=2", "RRULE:FREQ=YEARLY;BYMONTH=1;BYDAY=MO,TU;BYSETPOS=2"),
            // UNTIL at any time on the last day, or as a bare date, ends on that day.
            ("RRULE:FREQ=DAILY;UNTIL=20270401T215959Z", "RRULE:FREQ=DAILY;UNTIL=20270401T080000Z"),
            ("RRULE:FREQ=DAILY;UNTIL=20270401", "RRULE:FREQ=DAILY;UNTIL=20270401T080000Z"),
            ("RRULE:FREQ=DAILY;UNTIL=20270401T100000", "RRULE:FREQ=DAILY;UNTIL=20270401T080000Z"),
        ];
        for (written, expected) in cases {
            assert_eq!(canonical(&lines(&[written]), &s).unwrap(), [expected], "{written}");
        }
        // EXDATE lines are checked, and left to to_graph's list.
        let with_exdate = lines(&["EXDATE:20270308T090000Z", "RRULE:FREQ=WEEKLY"]);
        assert_eq!(canonical(&with_exdate, &s).unwrap(), ["RRULE:FREQ=WEEKLY;BYDAY=MO"]);
    }

    /// Berlin moves from UTC+1 to UTC+2 on 28 March 2027 and back on 31 October.
    #[test]
    fn until_in_utc_is_read_in_the_series_zone_across_dst() {
        let s = start("2027-01-01", "00:30", Tz::Europe__Berlin);
        let end_date = |rule: &str| graph(rule, &s)["range"]["endDate"].clone();
        // 22:30 UTC on 30 March is 00:30 on 31 March in summer time (23:30 on the 30th in winter).
        assert_eq!(end_date("RRULE:FREQ=DAILY;UNTIL=20270330T223000Z"), "2027-03-31");
        // In winter 22:30 UTC is 23:30 the same day, after that day's 00:30 occurrence.
        assert_eq!(end_date("RRULE:FREQ=DAILY;UNTIL=20270105T223000Z"), "2027-01-05");
        assert_eq!(end_date("RRULE:FREQ=DAILY;UNTIL=20270105T233000Z"), "2027-01-06");
        // And back: the end date's occurrence in UTC, with that day's offset.
        let rule = |end: &str| {
            rrule(
                json!({"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "endDate", "startDate": "2027-01-01", "endDate": end}}),
                &s,
            )
        };
        assert_eq!(rule("2027-03-31"), "RRULE:FREQ=DAILY;UNTIL=20270330T223000Z");
        assert_eq!(rule("2027-03-27"), "RRULE:FREQ=DAILY;UNTIL=20270326T233000Z");
        assert_eq!(rule("2027-11-01"), "RRULE:FREQ=DAILY;UNTIL=20271031T233000Z");
    }

    /// A start time the clocks skip or repeat on the last day still gives an UNTIL that reads
    /// back as that day.
    #[test]
    fn until_on_a_dst_change_day_reads_back_as_that_day() {
        for (time, end) in [("02:30", "2027-03-28"), ("02:30", "2027-10-31")] {
            let s = start("2027-03-01", time, Tz::Europe__Berlin);
            let recurrence = json!({"pattern": {"type": "daily", "interval": 1},
                                    "range": {"type": "endDate", "startDate": "2027-03-01", "endDate": end}});
            let back = to_graph(&from_graph(&recurrence, &s).unwrap(), &s).unwrap().0;
            assert_eq!(back["range"]["endDate"], end, "{time} on {end}");
        }
    }

    #[test]
    fn exdates_in_every_form_become_local_times_in_the_series_zone() {
        let s = berlin();
        let rule = |exdates: &[&str]| {
            let mut all = lines(&["RRULE:FREQ=DAILY"]);
            all.extend(lines(exdates));
            to_graph(&all, &s).unwrap().1
        };
        // In UTC: 09:00 UTC is 10:00 in winter, 08:00 UTC is 10:00 in summer.
        assert_eq!(rule(&["EXDATE:20270322T090000Z"]), [local("2027-03-22T10:00")]);
        assert_eq!(rule(&["EXDATE:20270405T080000Z"]), [local("2027-04-05T10:00")]);
        // A date alone is that day's occurrence.
        assert_eq!(rule(&["EXDATE;VALUE=DATE:20270322"]), [local("2027-03-22T10:00")]);
        // Lists, several lines, another zone, a floating time; sorted, without repeats.
        assert_eq!(
            rule(&[
                "EXDATE;TZID=Europe/Berlin:20270324T100000,20270322T100000",
                "EXDATE;TZID=\"America/New_York\":20270323T050000",
                "EXDATE:20270325T100000",
                "EXDATE:20270322T090000Z",
            ]),
            [
                local("2027-03-22T10:00"),
                local("2027-03-23T10:00"),
                local("2027-03-24T10:00"),
                local("2027-03-25T10:00")
            ]
        );
        // An all-day series: dates at midnight, whatever form they come in.
        let day = all_day("2027-03-01", Tz::Europe__Berlin);
        let all = lines(&[
            "RRULE:FREQ=DAILY;UNTIL=20270331",
            "EXDATE;VALUE=DATE:20270322,20270329",
            "EXDATE:20270324T230000Z",
        ]);
        let (recurrence, excluded) = to_graph(&all, &day).unwrap();
        assert_eq!(excluded, [local("2027-03-22T00:00"), local("2027-03-25T00:00"), local("2027-03-29T00:00")]);
        assert_eq!(recurrence["range"]["endDate"], "2027-03-31");
        assert_eq!(from_graph(&recurrence, &day).unwrap(), ["RRULE:FREQ=DAILY;UNTIL=20270331"]);
    }
}
