//! `guardline leads import FILE.csv`: streams a CSV file to lead-vault's
//! `ImportLeads` with a progress bar, then prints every refused row with the
//! field and the reason (never the value).
//!
//! The file has a header row; column names are case-insensitive and any
//! order. `phones` is required; several numbers in one cell are separated
//! by `;`, and so are tags. Unknown columns are refused before anything is
//! sent, so a misspelt `nmae` does not import leads without names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use guardline_proto::vault::v1 as pb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};
use indicatif::{ProgressBar, ProgressStyle};

/// `guardline leads ...`.
#[derive(clap::Subcommand, Debug)]
pub enum LeadsCommand {
    /// Import a CSV file of leads (see `--help` for the columns).
    Import(ImportArgs),
}

/// Flags of `guardline leads import`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Columns: phones (required; `;` between numbers), name, province, city, district, street, \
                        needs, notes, tags (`;` between tags), source, time_zone, owner_id, team_id, default_region.")]
pub struct ImportArgs {
    /// The CSV file, with a header row.
    pub file: PathBuf,
    /// Tenant to import into.
    #[arg(long)]
    pub tenant: String,
    /// Access token of a user allowed to write the leads (`lead.write`).
    #[arg(long, env = "GUARDLINE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Region for national numbers, e.g. `CN`, `US` (a row's `default_region` wins).
    #[arg(long, default_value = "")]
    pub default_region: String,
    /// Owner of rows that name none (the caller when empty).
    #[arg(long, default_value = "")]
    pub default_owner: String,
    /// Lead-vault endpoint.
    #[arg(long, env = "GUARDLINE_LEAD_VAULT_ENDPOINT", default_value = "https://localhost:7102")]
    pub endpoint: String,
    /// Data directory of `guardline up` (for the CLI certificate).
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
}

/// The columns a file may have.
const COLUMNS: [&str; 14] = [
    "phones",
    "name",
    "province",
    "city",
    "district",
    "street",
    "needs",
    "notes",
    "tags",
    "source",
    "time_zone",
    "owner_id",
    "team_id",
    "default_region",
];

/// Which column holds which field, checked against [`COLUMNS`].
#[derive(Debug)]
struct Header(BTreeMap<&'static str, usize>);

impl Header {
    fn parse(names: &csv::StringRecord) -> anyhow::Result<Self> {
        let mut map = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.trim().to_ascii_lowercase();
            let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
                anyhow::bail!("column {} `{name}` is not one of {}", i + 1, COLUMNS.join(", "));
            };
            if map.insert(*known, i).is_some() {
                anyhow::bail!("column `{name}` appears twice");
            }
        }
        if !map.contains_key("phones") {
            anyhow::bail!("the header has no `phones` column");
        }
        Ok(Self(map))
    }

    fn row(&self, r: &csv::StringRecord) -> pb::LeadInput {
        let get = |c: &str| self.0.get(c).and_then(|i| r.get(*i)).unwrap_or_default().trim().to_owned();
        let list = |c: &str| get(c).split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let address = pb::Address {
            province: get("province"),
            city: get("city"),
            district: get("district"),
            street: get("street"),
        };
        pb::LeadInput {
            phones: list("phones"),
            default_region: get("default_region"),
            name: get("name"),
            address: Some(address),
            needs: get("needs"),
            notes: get("notes"),
            tags: list("tags"),
            source: get("source"),
            time_zone: get("time_zone"),
            owner_id: get("owner_id"),
            team_id: get("team_id"),
        }
    }
}

/// The outcome of an import, the server's and the file's refusals merged.
#[derive(Debug, Default)]
struct Outcome {
    imported: u64,
    duplicates: u64,
    errors: Vec<pb::RowError>,
}

pub async fn run(cmd: LeadsCommand) -> anyhow::Result<()> {
    let LeadsCommand::Import(args) = cmd;
    let outcome = import(&args).await?;
    println!(
        "imported {}, skipped {} duplicates, refused {} rows",
        outcome.imported,
        outcome.duplicates,
        outcome.errors.len()
    );
    for e in &outcome.errors {
        println!("  line {}: {}: {}", e.row_number, e.field, e.description);
    }
    if !outcome.errors.is_empty() {
        // Scripts notice; the good rows are stored all the same.
        std::process::exit(1);
    }
    Ok(())
}

/// Reads the CSV rows and sends each as it is read; returns the rows that
/// are not valid CSV (by line, never quoting them).
fn send_rows(
    mut reader: csv::Reader<std::io::BufReader<std::fs::File>>,
    header: &Header,
    tx: &tokio::sync::mpsc::Sender<pb::ImportLeadsRequest>,
    bar: &ProgressBar,
) -> Vec<pb::RowError> {
    let mut malformed = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut sent = 0u64;
    loop {
        // The line the next record starts on (the header is line 1).
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let row = pb::ImportRow { row_number: line, lead: Some(header.row(&record)) };
                if tx
                    .blocking_send(pb::ImportLeadsRequest { item: Some(pb::import_leads_request::Item::Row(row)) })
                    .is_err()
                {
                    // The call ended early; its error is reported below.
                    break;
                }
                sent += 1;
            }
            // The csv error would quote the row: report the line only.
            Err(_) => malformed.push(pb::RowError {
                row_number: line,
                field: "csv".into(),
                description: "malformed row (wrong number of fields or not UTF-8)".into(),
            }),
        }
        bar.set_position(reader.position().byte());
        bar.set_message(format!("{sent} rows sent"));
    }
    bar.set_message(format!("{sent} rows sent; the vault is storing them"));
    malformed
}

async fn import(args: &ImportArgs) -> anyhow::Result<Outcome> {
    let file = std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let size = file.metadata()?.len();
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(std::io::BufReader::new(file));
    let header = Header::parse(reader.headers().map_err(|_| anyhow::anyhow!("the header row is not valid CSV"))?)?;

    let tls = TlsMaterial::load(TlsFiles::in_dir(&args.data_dir.join("pki"), guardline_runtime::devca::CLI))?;
    let mut client = LeadVaultServiceClient::new(guardline_runtime::connect(&args.endpoint, tls)?);

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {bytes}/{total_bytes} {msg}")?.progress_chars("=> "),
    );

    // Rows are read on a blocking thread and streamed as they are read; the
    // channel's bound keeps a large file from being held in memory here.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportLeadsRequest>(256);
    let head = pb::ImportHeader {
        tenant_id: args.tenant.clone(),
        default_region: args.default_region.clone(),
        default_owner_id: args.default_owner.clone(),
    };
    tx.send(pb::ImportLeadsRequest { item: Some(pb::import_leads_request::Item::Header(head)) }).await?;
    let reading_bar = bar.clone();
    let reading = tokio::task::spawn_blocking(move || send_rows(reader, &header, &tx, &reading_bar));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {}", args.token).parse()?);
    let answer = client.import_leads(req).await;
    let malformed = reading.await?;
    bar.finish_and_clear();
    let answer = answer.map_err(|s| anyhow::anyhow!("import refused: {:?}: {}", s.code(), s.message()))?.into_inner();
    let mut errors = answer.errors;
    errors.extend(malformed);
    errors.sort_by_key(|e| e.row_number);
    Ok(Outcome { imported: answer.imported, duplicates: answer.duplicates, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> anyhow::Result<Header> {
        Header::parse(&csv::StringRecord::from(cols.to_vec()))
    }

    #[test]
    fn rows_map_to_leads_by_header_name_in_any_order() {
        let h = header(&["Name", " phones ", "tags", "city", "time_zone"]).expect("header");
        let lead = h.row(&csv::StringRecord::from(vec![
            "张三",
            "138 1234 5678; +8613912345678",
            "vip;;car",
            "深圳市",
            "Asia/Shanghai",
        ]));
        assert_eq!(lead.phones, vec!["138 1234 5678", "+8613912345678"]);
        assert_eq!(lead.tags, vec!["vip", "car"]);
        assert_eq!((lead.name.as_str(), lead.time_zone.as_str()), ("张三", "Asia/Shanghai"));
        assert_eq!(lead.address.expect("address").city, "深圳市");
        assert!(lead.notes.is_empty() && lead.owner_id.is_empty(), "absent columns stay empty");
    }

    #[test]
    fn a_header_with_an_unknown_missing_or_repeated_column_is_refused() {
        let e = header(&["phones", "nmae"]).expect_err("misspelt").to_string();
        assert!(e.contains("column 2 `nmae`"), "{e}");
        let e = header(&["name", "city"]).expect_err("no phones").to_string();
        assert!(e.contains("no `phones` column"), "{e}");
        let e = header(&["phones", "Phones"]).expect_err("twice").to_string();
        assert!(e.contains("twice"), "{e}");
    }

    /// Fuzzing (seeded by `PROPTEST_RNG_SEED`, `PROPTEST_CASES` cases;
    /// failures kept in `proptest-regressions/`): any CSV file's header is
    /// taken or refused naming a column, and any row maps without a panic.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        const COLUMNS: &[&str] = &["name", "phones", "tags", "city", "time_zone", "notes", "owner_id", "region"];

        fn column() -> impl Strategy<Value = String> {
            prop_oneof![prop::sample::select(COLUMNS).prop_map(|c| format!(" {} ", c.to_uppercase())), "\\PC{0,12}"]
        }

        proptest! {
            #[test]
            fn headers_are_taken_or_refused_by_column(cols in prop::collection::vec(column(), 0..8)) {
                match header(&cols.iter().map(String::as_str).collect::<Vec<_>>()) {
                    Ok(_) => prop_assert!(cols.iter().any(|c| c.trim().eq_ignore_ascii_case("phones"))),
                    Err(e) => {
                        let e = e.to_string();
                        prop_assert!(e.contains("column") || e.contains("phones"), "{}", e);
                    }
                }
            }

            #[test]
            fn any_csv_file_reads_without_a_panic(text in "\\PC{0,300}", cells in prop::collection::vec("[^\\n]{0,20}", 1..8)) {
                for input in [text.clone(), format!("phones,name\n{}\n", cells.join(","))] {
                    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input.as_bytes());
                    let Ok(h) = reader.headers().cloned() else { continue };
                    let Ok(h) = Header::parse(&h) else { continue };
                    for row in reader.records().flatten() {
                        let lead = h.row(&row);
                        prop_assert!(lead.phones.iter().all(|p| !p.is_empty()));
                    }
                }
            }
        }
    }
}
