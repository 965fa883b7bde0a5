//! The lines a vendor adds to its software (docs/CLIENTS.md): one version
//! check, with the zone's public key shipped beside the binary.
//! `cargo run -p vcheckd-client --example check -- vc.example.com.v2.public`
use vcheckd_client::{Client, Outcome, Reporter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::fs::read_to_string(
        std::env::args()
            .nth(1)
            .unwrap_or("vc.example.com.v2.public".into()),
    )?;
    let me = Reporter {
        cluster_id: "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34".into(),
        node_id: "node-1".into(),
    };
    let client = Client::new("vc.example.com", &key, "2.3.1", Some(me))?;
    match client.check()? {
        Outcome::Checked(answer) => println!("{}", answer.hint.message),
        Outcome::Disabled => println!("version check disabled"),
    }
    Ok(())
}
