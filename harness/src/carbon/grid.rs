//! The bundled country-level grid carbon-intensity table (see `grid_intensity.csv` for the
//! source, licence and vintage) and region lookup with suggestions.

use std::sync::OnceLock;

/// One country's intensity.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRow {
    /// ISO 3166-1 alpha-3 code.
    pub code: String,
    /// Country name.
    pub name: String,
    /// Data year.
    pub year: u32,
    /// Lifecycle intensity, gCO2e/kWh.
    pub g_per_kwh: f64,
}

/// Source line recorded with every table-derived figure.
pub const SOURCE: &str = "Our World in Data energy dataset (carbon_intensity_elec: Ember yearly electricity data and Energy Institute Statistical Review), CC BY 4.0, github.com/owid/energy-data; via codecarbon 3.3.2's bundled copy";

const TABLE: &str = include_str!("grid_intensity.csv");

/// The bundled table, parsed once.
pub fn table() -> &'static [GridRow] {
    static ROWS: OnceLock<Vec<GridRow>> = OnceLock::new();
    ROWS.get_or_init(|| {
        TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("iso3,"))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some(GridRow {
                    code: f.first()?.to_string(),
                    name: f.get(1)?.to_string(),
                    year: f.get(2)?.parse().ok()?,
                    g_per_kwh: f.get(3)?.parse().ok()?,
                })
            })
            .collect()
    })
}

/// The world fallback, gCO2e/kWh: the table has no world row, and its unweighted mean would
/// overweight small island grids, so this is the mean of the same rows weighted by each
/// country's generation (`total_TWh` of the same dataset and years).
pub const WORLD_G_PER_KWH: f64 = 480.6;

/// Finds a region by ISO alpha-3 code or country name (case-insensitive).
pub fn lookup(region: &str) -> Result<&'static GridRow, String> {
    let q = region.trim().to_lowercase();
    if let Some(r) = table()
        .iter()
        .find(|r| r.code.to_lowercase() == q || r.name.to_lowercase() == q)
    {
        return Ok(r);
    }
    let mut scored: Vec<(usize, &GridRow)> = table()
        .iter()
        .map(|r| {
            let d =
                strsim::levenshtein(&q, &r.code.to_lowercase()).min(strsim::levenshtein(&q, &r.name.to_lowercase()));
            let prefix = r.name.to_lowercase().starts_with(&q) && !q.is_empty();
            (if prefix { 0 } else { d }, r)
        })
        .collect();
    scored.sort_by_key(|(d, r)| (*d, r.code.clone()));
    let near: Vec<String> = scored
        .iter()
        .take(3)
        .map(|(_, r)| format!("{} ({})", r.code, r.name))
        .collect();
    Err(format!(
        "unknown region `{region}`; nearest: {}. Use an ISO 3166-1 alpha-3 code or a country name, or set `intensity_g_per_kwh`",
        near.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_plausible() {
        let t = table();
        assert!(t.len() > 200, "{}", t.len());
        assert!(
            t.iter()
                .all(|r| r.g_per_kwh >= 0.0 && r.g_per_kwh < 1500.0 && r.code.len() == 3)
        );
        let fr = lookup("fra").unwrap();
        assert!(fr.g_per_kwh < 100.0 && fr.year >= 2022);
        assert_eq!(lookup("Germany").unwrap().code, "DEU");
    }

    #[test]
    fn unknown_region_suggests_the_nearest() {
        let e = lookup("Germny").unwrap_err();
        assert!(e.contains("DEU (Germany)"), "{e}");
        let e = lookup("DEX").unwrap_err();
        assert!(e.contains("DEU"), "{e}");
    }
}
