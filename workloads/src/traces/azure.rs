//! Azure LLM inference traces (2023/2024): `TIMESTAMP,ContextTokens,GeneratedTokens`, with
//! timestamps like `2023-11-16 18:15:46.6805900` (UTC).

use super::csv::{self, Csv};
use super::{RowIter, TraceFormat, TraceRow, err, tokens};

pub(super) const SPEC: TraceFormat = TraceFormat {
    name: "azure",
    about: "Azure LLM inference CSV: TIMESTAMP,ContextTokens,GeneratedTokens",
    parse,
    detect: |line| csv::header_has(line, COLUMNS),
};

/// The columns read (others are ignored).
const COLUMNS: &[&str] = &["TIMESTAMP", "ContextTokens", "GeneratedTokens"];

fn parse<'a>(reader: Box<dyn std::io::BufRead + 'a>, file: &'a str) -> RowIter<'a> {
    csv::rows(reader, file, COLUMNS, row)
}

fn row(c: &Csv<'_>, line: usize, f: &[String]) -> Result<TraceRow, crate::ConfigError> {
    let ts = c.field(f, line, "TIMESTAMP")?;
    let t_s = timestamp(ts).ok_or_else(|| {
        err(
            c.file,
            line,
            "TIMESTAMP",
            format!("`{ts}` is not a date-time like 2023-11-16 18:15:46.6805900"),
        )
    })?;
    Ok(TraceRow {
        line,
        t_s,
        input_tokens: tokens(c.field(f, line, "ContextTokens")?, c.file, line, "ContextTokens")?,
        output_tokens: tokens(c.field(f, line, "GeneratedTokens")?, c.file, line, "GeneratedTokens")?,
        source_failed: false,
        blocks: Vec::new(),
        reordered: false,
    })
}

/// Seconds since 1970 for `YYYY-MM-DD HH:MM:SS[.fraction]` (also with a `T`), UTC.
pub(crate) fn timestamp(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut t = time.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: f64 = t.next()?.parse().ok()?;
    if t.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0.0..61.0).contains(&sec) {
        return None;
    }
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + (h * 3600 + mi * 60) as f64 + sec)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(super::timestamp("2000-03-01T00:00:01Z"), Some(951_868_801.0));
        assert!(super::timestamp("2023-02-30x").is_none());
        assert!(super::timestamp("2023-11-16 25:00:00").is_none());
    }
}
