//! The suite judges a real grid's history end to end: a file deleted behind FileGrid's back
//! after the run must be reported as a lost acknowledged write, and the run must fail.

use std::process::Command;

#[test]
#[ignore = "starts a whole grid for about a minute; scripts/test.sh runs it (cargo nextest run -p filegrid-faults --run-ignored ignored-only)"]
fn a_write_lost_behind_filegrids_back_fails_the_run() {
    let exe = env!("CARGO_BIN_EXE_filegrid-faults");
    let node = std::path::Path::new(exe).with_file_name("filegrid-node");
    assert!(
        node.exists(),
        "{} is missing: cargo build -p filegrid-node --bins",
        node.display()
    );
    let out = Command::new(exe)
        .args([
            "--rounds",
            "2",
            "--seed",
            "5",
            "--clients",
            "3",
            "--faults",
            "KillStandby,CorruptChunk",
            "--sabotage",
        ])
        .output()
        .expect("running filegrid-faults");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("sabotage: deleted the manifest of"),
        "{stdout}"
    );
    assert!(stdout.contains("LOST acknowledged write"), "{stdout}");
    assert!(stdout.contains("RESULT: FAIL"), "{stdout}");
}
