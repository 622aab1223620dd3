//! The import rate for `sitrep-bench --acled ROWS`: a synthetic export in
//! ACLED's layout, imported into a running server three ways.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use sitrep::acled::{import, Options, Summary};

use crate::load::{tempfile_dir, Server};

/// A place of the synthetic export: admin1, admin2, admin3 (or ""), location, lat, lon.
type Place = (&'static str, &'static str, &'static str, &'static str, f64, f64);

/// Countries (name, ISO 3166-1 number) and their places.
const PLACES: &[(&str, &str, &[Place])] = &[
    (
        "Syria",
        "760",
        &[
            ("Aleppo", "Jebel Saman", "Jebel Saman", "Aleppo", 36.2021, 37.1343),
            ("Aleppo", "Jebel Saman", "", "Atareb", 36.1366, 36.8303),
            ("Aleppo", "Azaz", "Azaz", "Azaz", 36.5866, 37.0463),
            ("Idlib", "Ariha", "Ariha", "Ariha", 35.8136, 36.6069),
            ("Hama", "Hama", "Hama", "Hama", 35.1318, 36.7578),
        ],
    ),
    (
        "Ukraine",
        "804",
        &[
            ("Kharkiv", "Kharkivskyi", "Kharkivska", "Kharkiv", 49.9935, 36.2304),
            ("Kharkiv", "Kupianskyi", "Kupianska", "Kupiansk", 49.7103, 37.6155),
            ("Donetsk", "Pokrovskyi", "Pokrovska", "Pokrovsk", 48.2825, 37.1758),
            ("Kyiv City", "", "", "Kyiv", 50.45, 30.5233),
        ],
    ),
    (
        "Sudan",
        "729",
        &[
            ("North Darfur", "Al Fasher", "", "El Fasher", 13.6279, 25.3494),
            ("Khartoum", "Khartoum", "Khartoum", "Khartoum", 15.5881, 32.5342),
            ("Khartoum", "Bahri", "", "Bahri", 15.64, 32.53),
        ],
    ),
];

/// (event_type, sub_event_type, actor1 inter, actor2 inter or "").
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("Battles", "Armed clash", "1", "2"),
    ("Battles", "Non-state actor overtakes territory", "2", "1"),
    ("Battles", "Government regains territory", "1", "2"),
    (
        "Explosions/Remote violence",
        "Shelling/artillery/missile attack",
        "1",
        "7",
    ),
    ("Violence against civilians", "Attack", "3", "7"),
    ("Protests", "Peaceful protest", "6", ""),
    ("Strategic developments", "Headquarters or base established", "8", ""),
];

const HEADER: &str = "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,assoc_actor_1,inter1,actor2,assoc_actor_2,inter2,interaction,civilian_targeting,iso,region,country,admin1,admin2,admin3,location,latitude,longitude,geo_precision,source,source_scale,notes,fatalities,tags,timestamp";

/// Write `rows` rows (every one a distinct event) with `timestamp`. Each
/// location gets its own actor names, so places and actors grow with the file
/// as in a real export.
pub fn write_export(path: &Path, rows: u64, timestamp: u64) -> anyhow::Result<()> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_path(path)?;
    w.write_record(HEADER.split(','))?;
    let places: Vec<_> = PLACES
        .iter()
        .flat_map(|(c, iso, ps)| ps.iter().map(move |p| (*c, *iso, p)))
        .collect();
    for i in 0..rows {
        let (country, iso, &(a1, a2, a3, loc, lat, lon)) = places[(i as usize) % places.len()];
        let (event_type, sub, inter1, inter2) = KINDS[(i as usize / places.len()) % KINDS.len()];
        let group = i % 97;
        let actor1 = format!("Armed group {group} ({country})");
        let actor2 = if inter2.is_empty() {
            String::new()
        } else {
            format!("Armed group {} ({country})", (group + 1) % 97)
        };
        let day = 1 + i % 28;
        let fatalities = (i % 5) * (i % 3);
        let notes = format!(
            "On {day} November 2024, \"{actor1}\" and others were reported near {loc}, {a1}; row {i} of the bench export."
        );
        let fields = [
            format!("B{i}"),
            format!("2024-11-{day:02}"),
            "2024".into(),
            (1 + i % 3).to_string(),
            "Political violence".into(),
            event_type.into(),
            sub.into(),
            actor1,
            String::new(),
            inter1.into(),
            actor2,
            String::new(),
            inter2.into(),
            format!("{inter1}{inter2}"),
            String::new(),
            iso.into(),
            "Region".into(),
            country.into(),
            a1.into(),
            a2.into(),
            a3.into(),
            loc.into(),
            lat.to_string(),
            lon.to_string(),
            (1 + i % 3).to_string(),
            "Bench Wire; Local Monitor".into(),
            "National-International".into(),
            notes,
            fatalities.to_string(),
            String::new(),
            timestamp.to_string(),
        ];
        w.write_record(&fields)?;
    }
    w.flush()?;
    Ok(())
}

/// One timed import; the summary must show every row landed as `expect` says.
fn timed(opts: &Options, what: &str, check: impl Fn(&Summary) -> bool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let s = import(opts)?;
    let secs = started.elapsed().as_secs_f64();
    if !check(&s) {
        bail!("the {what} did not land as expected: {s}");
    }
    Ok(s.read as f64 / secs)
}

/// Import `rows` new rows, the same file again, then every row updated:
/// (figure, rows/s) for each.
pub fn rates(server: &str, token: Option<String>, dir: &Path, rows: u64) -> anyhow::Result<Vec<(String, f64)>> {
    const FIRST: u64 = 1_733_000_000;
    let (first, second) = (dir.join("acled-first.csv"), dir.join("acled-second.csv"));
    write_export(&first, rows, FIRST)?;
    write_export(&second, rows, FIRST + 1)?;
    let opts = |file: &Path| Options {
        file: Some(file.to_owned()),
        deletions: None,
        server: server.to_owned(),
        token: token.clone(),
    };
    Ok(vec![
        (
            format!("ACLED import: {rows} new rows (registrations and developments)"),
            timed(&opts(&first), "first import", |s| s.written == rows)?,
        ),
        (
            format!("ACLED import: the same {rows} rows again (nothing written)"),
            timed(&opts(&first), "re-import", |s| s.unchanged == rows)?,
        ),
        (
            format!("ACLED import: {rows} rows with newer timestamps (retract and replace)"),
            timed(&opts(&second), "update", |s| s.retracted == rows)?,
        ),
    ])
}

/// `sitrep-bench --acled ROWS`: the import rate of a synthetic ACLED export
/// into a server of its own (or `--server`), printed as a table.
pub fn run(opts: &crate::Options, rows: u64) -> anyhow::Result<()> {
    let tmp = tempfile_dir("sitrep-bench-acled")?;
    let own = match &opts.server {
        Some(_) => None,
        None => Some(Server::spawn(&tmp.join("data"))?),
    };
    let url = opts
        .server
        .clone()
        .or_else(|| own.as_ref().map(|s| s.url.clone()))
        .expect("a server of its own or --server");
    let figures = rates(&url, opts.token.clone(), &tmp, rows)?;
    drop(own);
    println!("| figure | rate |");
    println!("|---|---:|");
    for (name, rate) in figures {
        println!("| {name} | {rate:.0} rows/s |");
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
