//! `keybridge attestation`: an organisation's attestation root, batch certificate and FIDO metadata.
//!
//! `keybridge attestation init --out DIR --org NAME [--country CC]` writes:
//!
//! - `attestation-root.pem`: the attestation root CA relying parties trust;
//! - `batch-cert.pem` and `batch-key.pem` (0600, secret): the batch attestation certificate
//!   and key that `keybridge device init --attestation-dir DIR` imports into each phone;
//! - `metadata-statement.json`: the FIDO MDS3 metadata statement for keybridge's AAGUID;
//! - `mds-root.pem` and `mds-blob.jwt`: an MDS3 BLOB (JWS, ES256) holding that statement,
//!   signed under its own root, for `keybridge entra-sim --mds-blob FILE --mds-root FILE`;
//! - `README.txt`: what each file is.
//!
//! The roots' private keys are discarded after signing; rotate by running `init` again into a
//! new directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use keybridge_authenticator::AAGUID_STRING;
use keybridge_authenticator::pki::{OrganisationSettings, generate_organisation};

/// Arguments of `keybridge attestation`.
#[derive(Debug, Args)]
pub struct AttestationArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AttestationCommand,
}

/// `keybridge attestation` subcommands.
#[derive(Debug, Subcommand)]
pub enum AttestationCommand {
    /// Create an attestation root, a batch certificate + key for keybridge's AAGUID, its FIDO
    /// MDS3 metadata statement, and an MDS3 BLOB signed under a separate metadata root.
    ///
    /// Files written into DIR: attestation-root.pem, batch-cert.pem, batch-key.pem (secret,
    /// mode 0600), metadata-statement.json, mds-root.pem, mds-blob.jwt, README.txt. Existing
    /// files are never overwritten.
    Init(InitArgs),
}

/// `keybridge attestation init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Output directory (created if missing; must not already hold attestation files).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Organisation name: subject O of the certificates and part of the metadata description.
    #[arg(long, value_name = "NAME")]
    pub org: String,
    /// ISO 3166 two-letter country code for the certificates' subject C.
    #[arg(long, value_name = "CC", default_value = "US")]
    pub country: String,
}

/// Runs `keybridge attestation`.
pub fn run(args: AttestationArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AttestationCommand::Init(args) => {
            print!("{}", init_into(&args.out, &args.org, &args.country)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Generates and writes the material; returns the report to print.
pub(crate) fn init_into(out: &Path, organisation: &str, country: &str) -> anyhow::Result<String> {
    let material = generate_organisation(&OrganisationSettings {
        organisation: organisation.to_owned(),
        country: country.to_owned(),
        now: time::OffsetDateTime::now_utc(),
    })?;
    let written = material.write_to_dir(out)?;
    let mut report = format!(
        "Attestation material for {} (AAGUID {AAGUID_STRING}) written:\n",
        material.organisation
    );
    for path in written {
        report.push_str(&format!("  {}\n", path.display()));
    }
    report.push_str(&format!(
        "Import into each phone with `keybridge device init --store DIR --attestation-dir {}`.\n\
         Keep batch-key.pem secret; give relying parties attestation-root.pem or the BLOB\n\
         (entra-sim: --mds-blob {}/mds-blob.jwt --mds-root {}/mds-root.pem).\n",
        out.display(),
        out.display(),
        out.display()
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_every_file_once() {
        let temp = tempfile::tempdir().expect("tempdir");
        let out = temp.path().join("attestation");
        let report = init_into(&out, "Contoso", "DE").expect("init");
        for file in [
            "attestation-root.pem",
            "batch-cert.pem",
            "batch-key.pem",
            "metadata-statement.json",
            "mds-root.pem",
            "mds-blob.jwt",
            "README.txt",
        ] {
            assert!(out.join(file).is_file(), "{file}");
            assert!(report.contains(file), "{report}");
        }
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(out.join("batch-key.pem"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let statement: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join("metadata-statement.json")).expect("read"),
        )
        .expect("JSON");
        assert_eq!(statement["aaguid"], AAGUID_STRING);
        let error = init_into(&out, "Contoso", "DE")
            .expect_err("no overwrite")
            .to_string();
        assert!(error.contains("refusing to overwrite"), "{error}");
        let error = init_into(&temp.path().join("x"), "Contoso", "Germany")
            .expect_err("bad country")
            .to_string();
        assert!(error.contains("two-letter"), "{error}");
    }
}
