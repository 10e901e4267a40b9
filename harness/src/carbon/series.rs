//! A user-supplied carbon-intensity time series (e.g. hourly, from a grid operator).
//!
//! CSV with a header naming two columns: `timestamp_utc` (`YYYY-MM-DDTHH:MM[:SS]Z`, or a
//! `YYYY-MM-DD HH:MM[:SS]` UTC time, or Unix seconds) and `g_co2e_per_kwh`. Each row holds
//! from its timestamp until the next one; timestamps strictly increase. `#` lines are comments.

/// A parsed series: (Unix seconds, gCO2e/kWh), strictly increasing in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// File it came from.
    pub file: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Parses series text; `label` names the file in errors.
    pub fn parse(label: &str, text: &str) -> Result<Series, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let (hn, header) = lines
            .next()
            .ok_or_else(|| format!("{label}: empty file; expected a header `timestamp_utc,g_co2e_per_kwh`"))?;
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let find = |name: &str| {
            cols.iter().position(|c| *c == name).ok_or_else(|| {
                format!(
                    "{label}:{}: missing column `{name}`; the header must name `timestamp_utc` and `g_co2e_per_kwh`",
                    hn + 1
                )
            })
        };
        let (ct, cv) = (find("timestamp_utc")?, find("g_co2e_per_kwh")?);
        let mut points: Vec<(f64, f64)> = Vec::new();
        for (i, line) in lines {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |c: usize, name: &str| {
                f.get(c)
                    .copied()
                    .ok_or_else(|| format!("{label}:{}: field `{name}`: missing", i + 1))
            };
            let ts = get(ct, "timestamp_utc")?;
            let t = parse_time(ts).ok_or_else(|| {
                format!(
                    "{label}:{}: field `timestamp_utc`: `{ts}` is not a UTC time (use 2025-01-31T13:00:00Z or Unix seconds)",
                    i + 1
                )
            })?;
            let vs = get(cv, "g_co2e_per_kwh")?;
            let v: f64 = vs
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!(
                        "{label}:{}: field `g_co2e_per_kwh`: `{vs}` must be a number of gCO2e/kWh >= 0",
                        i + 1
                    )
                })?;
            if let Some(&(prev, _)) = points.last()
                && t <= prev
            {
                return Err(format!(
                    "{label}:{}: field `timestamp_utc`: `{ts}` is not after the previous row; sort the series by time",
                    i + 1
                ));
            }
            points.push((t, v));
        }
        if points.is_empty() {
            return Err(format!("{label}: no rows after the header"));
        }
        Ok(Series {
            file: label.to_string(),
            points,
        })
    }

    /// Time-weighted mean intensity over `[from, to]` (Unix seconds), and whether the window
    /// reached outside the series (the first or last value was then extended).
    pub fn mean_over(&self, from: f64, to: f64) -> (f64, bool) {
        let p = &self.points;
        let outside = from < p[0].0 || to > p[p.len() - 1].0 + 3600.0;
        if to <= from {
            return (self.value_at(from), outside);
        }
        // Step function: integrate each row's value over its overlap with the window.
        let mut sum = 0.0;
        let mut t = from;
        while t < to {
            let i = p.partition_point(|x| x.0 <= t);
            let next = p.get(i).map(|x| x.0).unwrap_or(f64::INFINITY).min(to);
            sum += self.value_at(t) * (next - t);
            t = next;
        }
        (sum / (to - from), outside)
    }

    /// Time-weighted mean over the whole series (the last row holds for an hour).
    pub fn mean(&self) -> f64 {
        let p = &self.points;
        self.mean_over(p[0].0, p[p.len() - 1].0 + 3600.0).0
    }

    fn value_at(&self, t: f64) -> f64 {
        let i = self.points.partition_point(|x| x.0 <= t);
        self.points[i.saturating_sub(1)].1
    }
}

/// Unix seconds from `YYYY-MM-DDTHH:MM[:SS][Z]`, `YYYY-MM-DD HH:MM[:SS]`, or a number.
pub fn parse_time(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' '])?;
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || !(2..=3).contains(&t.len()) {
        return None;
    }
    let (y, m, day): (i64, u32, u32) = (d[0].parse().ok()?, d[1].parse().ok()?, d[2].parse().ok()?);
    let (hh, mm): (u32, u32) = (t[0].parse().ok()?, t[1].parse().ok()?);
    let ss: f64 = t.get(2).map(|x| x.parse().ok()).unwrap_or(Some(0.0))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || !(0.0..61.0).contains(&ss) {
        return None;
    }
    Some(days_from_civil(y, m, day) as f64 * 86_400.0 + f64::from(hh * 3600 + mm * 60) + ss)
}

/// Days since 1970-01-01 of a Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_time("2000-03-01 00:00"), Some(951_868_800.0));
        assert_eq!(parse_time("1700000000"), Some(1.7e9));
        assert_eq!(parse_time("2025-13-01T00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn mean_is_time_weighted_over_the_steps() {
        let s = Series::parse(
            "grid.csv",
            "# hourly\ntimestamp_utc,g_co2e_per_kwh\n2025-01-01T00:00Z,100\n2025-01-01T01:00Z,300\n",
        )
        .unwrap();
        let t0 = parse_time("2025-01-01T00:30Z").unwrap();
        // 30 min at 100 and 30 min at 300.
        let (m, outside) = s.mean_over(t0, t0 + 3600.0);
        assert!((m - 200.0).abs() < 1e-9 && !outside);
        assert!(s.mean_over(t0 - 7200.0, t0).1);
    }

    #[test]
    fn malformed_series_name_line_and_field() {
        let e = Series::parse("g.csv", "timestamp_utc,g_co2e_per_kwh\n2025-01-01T00:00Z,-5\n").unwrap_err();
        assert!(e.starts_with("g.csv:2: field `g_co2e_per_kwh`"), "{e}");
        let e = Series::parse("g.csv", "timestamp_utc,g_co2e_per_kwh\nnoon,5\n").unwrap_err();
        assert!(e.starts_with("g.csv:2: field `timestamp_utc`"), "{e}");
        let e = Series::parse("g.csv", "time,value\n").unwrap_err();
        assert!(e.contains("missing column `timestamp_utc`"), "{e}");
        let e = Series::parse("g.csv", "timestamp_utc,g_co2e_per_kwh\n10,1\n5,1\n").unwrap_err();
        assert!(e.starts_with("g.csv:3:"), "{e}");
        assert!(Series::parse("g.csv", "timestamp_utc,g_co2e_per_kwh\n").is_err());
    }
}
