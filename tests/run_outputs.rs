//! CI's check of its quick run: `.ci/run` runs `oae run --requests N --out DIR`, gates it
//! against itself, then runs this test with `OAE_CHECK_RUN_DIR=DIR OAE_CHECK_REQUESTS=N`.
//! Everything is read through the typed run-directory schema; a renamed or missing field
//! fails here. Without the variables the test says so and skips (the CLI test
//! `default_suite_run_produces_files_that_parse_and_agree` applies the same checks to a run
//! of its own).

mod common;

#[test]
fn ci_quick_run_directory_holds_together() {
    let Some(dir) = std::env::var_os("OAE_CHECK_RUN_DIR") else {
        eprintln!("skipped: set OAE_CHECK_RUN_DIR=DIR and OAE_CHECK_REQUESTS=N to check a quick-suite run directory");
        return;
    };
    let requests: u64 = std::env::var("OAE_CHECK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("OAE_CHECK_REQUESTS=N: the --requests the run used");
    let line = common::check_quick_run(std::path::Path::new(&dir), requests, 2, true);
    println!("{line}");
}
