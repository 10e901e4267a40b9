//! The `openai` method against the scripted server (`oae_methods::openai::fake`): streamed
//! tokens timed as they arrive, the server's token counts, and every failure a request can
//! meet recorded as its own outcome.

mod common;

use std::time::{Duration, Instant};

use common::{Collect, build, request};
use oae_harness::{Completion, Flow, Method, MethodError, Probe, StopReason, TokenSink};
use oae_methods::openai::fake::{FakeServer, Fault, Script};

fn server(script: Script) -> FakeServer {
    FakeServer::start("127.0.0.1:0", script).unwrap()
}

fn method(s: &FakeServer, extra: &str) -> Box<dyn Method> {
    let toml = format!("base_url = \"{}\"\nmodel = \"fake\"\n{extra}", s.base_url("/v1"));
    build("openai", &toml).unwrap()
}

/// Stamps each token like the harness does.
struct Stamps(Vec<Instant>);

impl TokenSink for Stamps {
    fn token(&mut self, _: u32) -> Flow {
        self.0.push(Instant::now());
        Flow::Continue
    }
}

fn serve(
    m: &mut dyn Method,
    n: u32,
) -> (
    Result<Completion, MethodError>,
    Vec<u32>,
    std::collections::BTreeMap<String, f64>,
) {
    let mut sink = Collect(Vec::new());
    let mut probe = Probe::default();
    let r = m.serve(&request(0, "one two three", n), &mut sink, &mut probe);
    let (_, counters) = probe.finish();
    (r, sink.0, counters)
}

#[test]
fn streams_chunks_as_they_arrive_with_the_servers_token_counts() {
    let s = server(Script {
        ttft_ms: 40.0,
        itl_ms: 15.0,
        ..Script::default()
    });
    let mut m = method(&s, "");
    m.prepare().unwrap();
    assert_eq!(s.completions(), 1, "one warm-up request at setup");
    let mut sink = Stamps(Vec::new());
    let mut probe = Probe::default();
    let t0 = Instant::now();
    let c = m.serve(&request(0, "one two three", 6), &mut sink, &mut probe).unwrap();
    assert_eq!(c.output_tokens, Some(6));
    assert_eq!(c.input_tokens, Some(3));
    assert_eq!(c.stop, StopReason::Length);
    assert_eq!(sink.0.len(), 6);
    let ttft = (sink.0[0] - t0).as_secs_f64() * 1e3;
    assert!(
        (40.0..140.0).contains(&ttft),
        "first token after {ttft} ms, scripted 40"
    );
    for w in sink.0.windows(2) {
        let gap = (w[1] - w[0]).as_secs_f64() * 1e3;
        assert!(gap >= 5.0, "chunks arrive as sent, not in one read: gap {gap} ms");
    }
    let (phases, counters) = probe.finish();
    assert!(phases["wait"] >= 35.0 && phases.contains_key("stream"));
    assert_eq!(counters["tokens_from_usage"], 1.0);
    assert_eq!(counters["chunks"], 6.0);
    assert_eq!(m.detokenize(&[0, 1, 2, 3, 4, 5]).unwrap(), "w0 w1 w2 w3 w4 w5 ");
    // The kept-alive connection serves the next request.
    let (r, ids, _) = serve(m.as_mut(), 3);
    assert_eq!(r.unwrap().output_tokens, Some(3));
    assert_eq!(ids, vec![0, 1, 2]);
}

#[test]
fn completions_endpoint_and_counts_without_usage_are_flagged() {
    let s = server(Script {
        usage: false,
        tokens: Some(4),
        ..Script::default()
    });
    let mut m = method(&s, "endpoint = \"completions\"\nusage = false\nwarmup_requests = 0");
    m.prepare().unwrap();
    let (r, ids, counters) = serve(m.as_mut(), 10);
    let c = r.unwrap();
    assert_eq!(
        (c.output_tokens, c.input_tokens, c.stop),
        (Some(4), None, StopReason::Eos)
    );
    assert_eq!(ids.len(), 4);
    assert_eq!(counters["tokens_from_chunks"], 1.0);
}

fn failing(fault: Fault) -> (Result<Completion, MethodError>, std::collections::BTreeMap<String, f64>) {
    let s = server(Script {
        faults: vec![fault],
        ..Script::default()
    });
    let mut m = method(&s, "warmup_requests = 0\nfirst_token_timeout_s = 0.3");
    m.prepare().unwrap();
    let (r, _, counters) = serve(m.as_mut(), 8);
    (r, counters)
}

#[test]
fn every_failure_is_an_error_of_its_own_kind() {
    let (r, c) = failing(Fault::Status(429));
    assert!(
        matches!(r, Err(MethodError::Rejected(ref m)) if m.contains("HTTP 429") && m.contains("scripted 429")),
        "{r:?}"
    );
    assert_eq!(c["http_429"], 1.0);

    let (r, c) = failing(Fault::Status(503));
    assert!(
        matches!(r, Err(MethodError::Failed(ref m)) if m.contains("HTTP 503")),
        "{r:?}"
    );
    assert_eq!(c["http_5xx"], 1.0);

    let (r, c) = failing(Fault::Status(400));
    assert!(matches!(r, Err(MethodError::Failed(_))));
    assert_eq!(c["http_4xx"], 1.0);

    let (r, c) = failing(Fault::Cut);
    assert!(
        matches!(r, Err(MethodError::Failed(ref m)) if m.contains("closed") || m.contains("ended after")),
        "{r:?}"
    );
    assert_eq!(c["stream_cut"], 1.0);

    let (r, c) = failing(Fault::Malformed);
    assert!(
        matches!(r, Err(MethodError::Failed(ref m)) if m.contains("malformed")),
        "{r:?}"
    );
    assert_eq!(c["stream_malformed"], 1.0);

    let (r, c) = failing(Fault::Error);
    assert!(
        matches!(r, Err(MethodError::Failed(ref m)) if m.contains("scripted mid-stream error")),
        "{r:?}"
    );
    assert_eq!(c["stream_error"], 1.0);

    let (r, c) = failing(Fault::Json);
    assert!(
        matches!(r, Err(MethodError::Failed(ref m)) if m.contains("not a stream") && m.contains("application/json")),
        "{r:?}"
    );
    assert_eq!(c["stream_malformed"], 1.0);

    let t = Instant::now();
    let (r, c) = failing(Fault::Silent);
    assert!(
        matches!(r, Err(MethodError::Timeout(ref m)) if m.contains("first_token_timeout_s")),
        "{r:?}"
    );
    assert_eq!(c["timed_out"], 1.0);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_refused_connection_is_an_error_naming_the_url() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml =
        format!("base_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"x\"\ncheck_model = false\nwarmup_requests = 0");
    let mut m = build("openai", &toml).unwrap();
    m.prepare().unwrap();
    let (r, _, c) = serve(m.as_mut(), 4);
    assert!(
        matches!(r, Err(MethodError::Failed(ref m)) if m.contains(&port.to_string()) && m.contains("server running")),
        "{r:?}"
    );
    assert_eq!(c["connect_failed"], 1.0);
    // With the model check on, setup says so first.
    let toml = format!("base_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"x\"");
    let err = build("openai", &toml).unwrap().prepare().unwrap_err().to_string();
    assert!(err.contains("/v1/models") && err.contains("server running"), "{err}");
}

#[test]
fn the_harness_stop_ends_a_wait_for_the_first_token() {
    struct StopOnPoll(u32);
    impl TokenSink for StopOnPoll {
        fn token(&mut self, _: u32) -> Flow {
            Flow::Continue
        }
        fn poll(&mut self) -> Flow {
            self.0 += 1;
            if self.0 > 3 { Flow::Stop } else { Flow::Continue }
        }
    }
    let s = server(Script {
        faults: vec![Fault::Silent],
        ..Script::default()
    });
    let mut m = method(&s, "warmup_requests = 0");
    m.prepare().unwrap();
    let t = Instant::now();
    let c = m
        .serve(&request(0, "p", 4), &mut StopOnPoll(0), &mut Probe::default())
        .unwrap();
    assert_eq!(c.stop, StopReason::Stopped);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn setup_refuses_a_model_the_server_does_not_serve() {
    let s = server(Script::default());
    let toml = format!("base_url = \"{}\"\nmodel = \"llama-9000\"", s.base_url("/v1"));
    let err = build("openai", &toml).unwrap().prepare().unwrap_err().to_string();
    assert!(
        err.contains("does not serve model `llama-9000`") && err.contains("fake"),
        "{err}"
    );
}

#[test]
fn bad_configuration_is_refused_at_build_naming_the_key() {
    let err = |toml: &str| build("openai", toml).err().expect("refused").to_string();
    let e = err("base_url = \"https://api.example.com/v1\"\nmodel = \"m\"");
    assert!(e.contains("base_url") && e.contains("https"), "{e}");
    let e = err("base_url = \"127.0.0.1:8080\"\nmodel = \"m\"");
    assert!(e.contains("base_url") && e.contains("http://"), "{e}");
    let e = err("base_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"m\"\napi_key_env = \"OAE_TEST_NO_SUCH_VARIABLE\"");
    assert!(
        e.contains("api_key_env") && e.contains("OAE_TEST_NO_SUCH_VARIABLE"),
        "{e}"
    );
    let e = err("base_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"m\"\nserver = \"tensorrt\"");
    assert!(e.contains("server") && e.contains("llama.cpp"), "{e}");
    let e = err("base_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"m\"\nextra = { stream = false }");
    assert!(e.contains("extra") && e.contains("stream"), "{e}");
    let e = err("base_url = \"http://127.0.0.1:8080/v1\"");
    assert!(e.contains("model"), "{e}");
}

#[test]
fn a_launched_server_that_exits_or_never_becomes_ready_is_a_setup_error_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        "base_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\nlaunch = {{ command = [\"sh\", \"-c\", \"echo loading weights; echo out of memory >&2; exit 3\"] }}"
    );
    let mut m = build("openai", &toml).unwrap();
    m.files_dir(dir.path());
    let e = m.prepare().unwrap_err().to_string();
    assert!(
        e.contains("exited") && e.contains("out of memory") && e.contains("loading weights"),
        "{e}"
    );
    assert!(dir.path().join("server.log").is_file());

    let toml = format!(
        "base_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\nlaunch = {{ command = [\"sleep\", \"30\"], ready_timeout_s = 0.5 }}"
    );
    let mut m = build("openai", &toml).unwrap();
    m.files_dir(dir.path());
    let t = Instant::now();
    let e = m.prepare().unwrap_err().to_string();
    assert!(e.contains("ready_timeout_s") && e.contains("/health"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the server was stopped, not waited for"
    );
}

#[test]
fn a_launch_onto_a_busy_port_is_refused() {
    let s = server(Script::default());
    let toml = format!(
        "base_url = \"{}\"\nmodel = \"fake\"\nlaunch = {{ command = [\"sleep\", \"30\"] }}",
        s.base_url("/v1")
    );
    let e = build("openai", &toml).unwrap().prepare().unwrap_err().to_string();
    assert!(e.contains("already answers"), "{e}");
}
