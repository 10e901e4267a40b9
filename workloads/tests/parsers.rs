//! Every trace parser, fed arbitrary bytes and mutated valid files, returns rows or a located
//! error — never a panic, never a broken row invariant. (The same check drives the cargo-fuzz
//! target in `fuzz/`; this is its always-on, stable-toolchain counterpart.)

use oae_workloads::traces::{check_parser, registry};
use proptest::prelude::*;

const SAMPLES: &[(&str, &str)] = &[
    (
        "azure",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n",
    ),
    (
        "burstgpt",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n45,\"GPT-4, x\",1087,0,1087,API log\n",
    ),
    (
        "mooncake",
        "{\"timestamp\": 0, \"input_length\": 6955, \"output_length\": 52, \"hash_ids\": [46, 47]}\n{\"timestamp\": 1500, \"input_length\": 700, \"output_length\": 20, \"hash_ids\": [46]}\n",
    ),
    (
        "oae-jsonl",
        "{\"t_s\": 0.5, \"input_tokens\": 10, \"output_tokens\": 3}\n{\"t_s\": 0.75, \"input_tokens\": 4, \"output_tokens\": 2, \"failed\": true}\n",
    ),
    (
        "oae-csv",
        "t_s,input_tokens,output_tokens,failed\n0,5,5,0\n1.25,6,7,1\n",
    ),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(pick in 0usize..16, data in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_parser(registry()[pick % registry().len()].name, &data);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        pick in 0usize..16,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let (name, text) = SAMPLES[pick % SAMPLES.len()];
        let mut data = text.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at % (data.len() + 1);
            match op {
                0 if i < data.len() => data[i] = byte,
                1 => data.insert(i, byte),
                _ if i < data.len() => { data.remove(i); }
                _ => {}
            }
        }
        check_parser(name, &data);
    }
}

#[test]
fn samples_cover_every_registered_format() {
    for f in registry() {
        assert!(
            SAMPLES.iter().any(|(n, _)| *n == f.name),
            "add a sample for `{}`",
            f.name
        );
    }
}
