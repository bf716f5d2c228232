//! Every broker refusal, a grant, the audit chain, and the key-material grep.

use std::path::Path;

use base64::Engine as _;
use vouch_seal::audit::{self, AuditEntry, AuditLog};
use vouch_seal::*;

const NOW: u64 = 1_900_000_000;
const MODULE: &str = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy";

struct World {
    broker: Broker,
    object: ObjectId,
    data: Cid,
    lab: HpkeSecretKey,
    key_bytes: [u8; 32],
}

fn policy_text(evidence: &str, caps: &str, lab: &HpkePublicKey) -> String {
    format!(
        "[modules]\nallow = [\"{MODULE}\"]\nsigners = [\"{}\"]\n[evidence]\n{evidence}\n[capabilities]\n{caps}\n\
         [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 1000000\n",
        hex::encode(owner().verifying_key().to_bytes())
    )
}

fn owner() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn world(policy: impl FnOnce(&HpkePublicKey) -> AccessPolicy, roots: Vec<Vec<u8>>) -> World {
    let lab = HpkeSecretKey::generate();
    let key = DataKey::generate();
    let key_bytes = *key.expose_secret();
    let mut sealed = Vec::new();
    let object = seal(&key, &b"records"[..], &mut sealed, SealOptions::default()).unwrap().header.object;
    let data: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".parse().unwrap();
    let mut broker = Broker::new(roots);
    broker.register(object, data, key, policy(&lab.public())).unwrap();
    World { broker, object, data, lab, key_bytes }
}

fn insecure_world(caps: &str) -> World {
    let caps = caps.to_owned();
    world(
        |lab| {
            AccessPolicy::from_toml_str(&policy_text("require = [\"none\"]\nallow_insecure = true", &caps, lab))
                .unwrap()
        },
        vec![],
    )
}

fn spec(w: &World) -> vouch_receipt::JobSpec {
    let mut s = vouch_receipt::JobSpec::new(MODULE.parse().unwrap());
    s.inputs.insert("records.csv".into(), w.data);
    s.recipient = Some(w.lab.public().0.to_vec());
    s.limits.output_bytes = 100_000;
    s.limits.stdout_bytes = 1000;
    s.limits.stderr_bytes = 1000;
    s
}

fn request(w: &mut World, spec: &vouch_receipt::JobSpec, eph: &HpkeSecretKey) -> KeyRequest {
    KeyRequest {
        object: w.object,
        job: JobView::from_spec(spec),
        node_key: [1; 32],
        technology: "none".into(),
        evidence: vec![],
        ephemeral_key: eph.public(),
        challenge: w.broker.challenge(&w.object, NOW).unwrap(),
        endorsements: vec![],
    }
}

fn refusal(d: Decision) -> Refusal {
    match d {
        Decision::Refused(r) => r,
        Decision::Granted(g) => panic!("granted: {g:?}"),
    }
}

#[test]
fn grant_releases_the_key_to_the_ephemeral_key_only() {
    let mut w = insecure_world("");
    let eph = HpkeSecretKey::generate();
    let s = spec(&w);
    let req = request(&mut w, &s, &eph);
    // Through the wire form and back.
    let req = KeyRequest::decode(&req.encode(&s)).unwrap();
    assert_eq!(req.job.cid, s.cid());
    let Decision::Granted(g) = w.broker.decide(&req, NOW) else { panic!() };
    assert!(g.insecure);
    assert_eq!(g.max_output_bytes, 1_000_000, "the grant states the output limit the runtime enforces");
    assert_eq!(g.recipient, w.lab.public().0);
    let key = unwrap(Purpose::KeyRelease, &g.wrapped, &eph, &s.cid(), &w.object).unwrap();
    assert_eq!(key.expose_secret(), &w.key_bytes);
    assert!(unwrap(Purpose::KeyRelease, &g.wrapped, &HpkeSecretKey::generate(), &s.cid(), &w.object).is_err());
    // The grant travels as DAG-CBOR and decodes back.
    let bytes = serde_ipld_dagcbor::to_vec(&Decision::Granted(g.clone())).unwrap();
    assert_eq!(serde_ipld_dagcbor::from_slice::<Decision>(&bytes).unwrap(), Decision::Granted(g));
}

/// A change to the job spec a case makes, given the lab's public key.
type SpecEdit = Box<dyn Fn(&mut vouch_receipt::JobSpec, &HpkePublicKey)>;

#[test]
fn every_refusal_names_its_rule() {
    let eph = HpkeSecretKey::generate();
    let cases: Vec<(&str, &str, SpecEdit)> = vec![
        (
            "",
            "modules.allow",
            Box::new(|s, _| s.module = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".parse().unwrap()),
        ),
        ("args = \"none\"", "capabilities.args", Box::new(|s, _| s.args = vec!["m".into(), "--leak".into()])),
        ("args = [\"m\"]", "capabilities.args", Box::new(|s, _| s.args = vec!["x".into()])),
        (
            "env = \"none\"",
            "capabilities.env",
            Box::new(|s, _| {
                s.env.insert("K".into(), "V".into());
            }),
        ),
        ("", "capabilities.nondeterministic", Box::new(|s, _| s.deterministic = false)),
        ("max_memory_bytes = 1048576", "capabilities.max_memory_bytes", Box::new(|_, _| {})),
        ("max_fuel = 1000", "capabilities.max_fuel", Box::new(|_, _| {})),
        ("", "results.recipients", Box::new(|s, _| s.recipient = Some(HpkeSecretKey::generate().public().0.to_vec()))),
        ("", "results.recipients", Box::new(|s, _| s.recipient = None)),
        ("", "results.max_output_bytes", Box::new(|s, _| s.limits.output_bytes = 2_000_000)),
        ("", "object", Box::new(|s, _| s.inputs.clear())),
    ];
    for (caps, rule, edit) in cases {
        let mut w = insecure_world(caps);
        let mut s = spec(&w);
        edit(&mut s, &w.lab.public());
        let req = request(&mut w, &s, &eph);
        let r = refusal(w.broker.decide(&req, NOW));
        assert_eq!(r.rule, rule, "{caps}: {r}");
    }
}

#[test]
fn allowed_module_asking_for_a_forbidden_capability_is_refused() {
    let mut w = insecure_world("nondeterministic = false");
    let mut s = spec(&w);
    s.deterministic = false;
    let req = request(&mut w, &s, &HpkeSecretKey::generate());
    let r = refusal(w.broker.decide(&req, NOW));
    assert_eq!((r.rule.as_str(), r.found.as_str()), ("capabilities.nondeterministic", "deterministic = false"));
}

#[test]
fn endorsed_modules_are_admitted_by_their_signer_only() {
    let other: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".parse().unwrap();
    for (signer, granted) in [(owner(), true), (ed25519_dalek::SigningKey::from_bytes(&[1; 32]), false)] {
        let mut w = insecure_world("");
        let mut s = spec(&w);
        s.module = other;
        let mut req = request(&mut w, &s, &HpkeSecretKey::generate());
        req.endorsements = vec![ModuleEndorsement::sign(&signer, &other)];
        assert_eq!(matches!(w.broker.decide(&req, NOW), Decision::Granted(_)), granted);
    }
}

#[test]
fn replayed_stale_and_foreign_challenges_are_refused() {
    let mut w = insecure_world("");
    let eph = HpkeSecretKey::generate();
    let s = spec(&w);
    let req = request(&mut w, &s, &eph);
    assert!(matches!(w.broker.decide(&req, NOW), Decision::Granted(_)));
    let r = refusal(w.broker.decide(&req, NOW));
    assert!(r.rule == "challenge" && r.found.contains("already used"), "{r}");

    let req = request(&mut w, &s, &eph);
    let r = refusal(w.broker.decide(&req, NOW + 300));
    assert_eq!(r.rule, "challenge", "expired after the default 5 min ttl: {r}");

    let mut req = request(&mut w, &s, &eph);
    req.challenge = [7; 32];
    assert_eq!(refusal(w.broker.decide(&req, NOW)).rule, "challenge");
}

#[test]
fn none_evidence_is_refused_when_hardware_is_required() {
    let mut w = world(
        |lab| {
            AccessPolicy::from_toml_str(&policy_text(
                "require = [\"tpm\"]\n[evidence.appraisal]\naccept = [\"tpm\"]",
                "",
                lab,
            ))
            .unwrap()
        },
        vec![],
    );
    let s = spec(&w);
    let req = request(&mut w, &s, &HpkeSecretKey::generate());
    let r = refusal(w.broker.decide(&req, NOW));
    assert_eq!((r.rule.as_str(), r.found.as_str()), ("evidence.require", "none (no hardware claim)"));
}

fn attest_testdata(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vouch-attest/testdata/tpm").join(name)
}

/// Real swtpm evidence (vouch-attest's committed vector) passes every TPM claim but one: its
/// qualifying data is SHA-256("nonce-1"), not this request's binding of challenge, ephemeral
/// key, job and node key. The broker refuses it at `tpm-qualifying-data`.
#[test]
fn real_tpm_evidence_not_binding_the_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = std::fs::read_to_string(attest_testdata("policy.toml")).unwrap().replace("[pcrs]", "[tpm.pcrs]");
    std::fs::write(dir.path().join("attest.toml"), format!("accept = [\"tpm\"]\n[tpm]\n{tpm}")).unwrap();
    let roots = vec![std::fs::read(attest_testdata("ek-root.der")).unwrap()];
    let evidence = std::fs::read(attest_testdata("evidence.cbor")).unwrap();
    let mut w = world(
        |lab| {
            let path = dir.path().join("access.toml");
            std::fs::write(&path, policy_text("require = [\"tpm\"]\nappraisal_file = \"attest.toml\"", "", lab))
                .unwrap();
            AccessPolicy::load(&path).unwrap()
        },
        roots,
    );
    let s = spec(&w);
    let mut req = request(&mut w, &s, &HpkeSecretKey::generate());
    req.technology = "tpm".into();
    req.evidence = evidence;
    let r = refusal(w.broker.decide(&req, NOW));
    assert_eq!(r.rule, "evidence.appraisal: tpm-qualifying-data", "{r}");
    let binding = request_binding(&req.node_key, &req.challenge, &req.ephemeral_key, &req.job.cid);
    assert!(r.expected.contains(&hex::encode(binding)), "the refusal shows the binding expected: {r}");
    // What the evidence does carry: SHA-256("nonce-1"), the vector's own nonce.
    assert!(r.found == "9e3f156324d42f0ea4b6f4fce81d56fbd64a2143a3fdd60a130d9c90e5b4d688", "{r}");
}

#[test]
fn audit_log_chains_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut w = insecure_world("");
    let eph = HpkeSecretKey::generate();
    let s = spec(&w);
    {
        let mut log = AuditLog::open(&path).unwrap();
        for _ in 0..3 {
            let req = request(&mut w, &s, &eph);
            let d = w.broker.decide(&req, NOW);
            log.append(AuditEntry::new(&req, &d, NOW)).unwrap();
            let d = w.broker.decide(&req, NOW); // the replay, refused
            log.append(AuditEntry::new(&req, &d, NOW)).unwrap();
        }
    }
    // Reopening verifies and continues the chain.
    let mut log = AuditLog::open(&path).unwrap();
    let req = request(&mut w, &s, &eph);
    log.append(AuditEntry::new(
        &req,
        &Decision::Refused(Refusal { rule: "x".into(), expected: "y".into(), found: "z".into() }),
        NOW,
    ))
    .unwrap();
    let mut entries = Vec::new();
    let text = std::fs::read_to_string(&path).unwrap();
    let (n, _) = audit::verify(text.as_bytes(), |e| entries.push(e)).unwrap();
    assert_eq!(n, 7);
    assert_eq!(entries[0].decision, "granted");
    assert_eq!(entries[1].rule.as_deref(), Some("challenge"));

    let lines: Vec<&str> = text.lines().collect();
    let tampered = text.replacen("\"granted\"", "\"refused\"", 1);
    let e = audit::verify(tampered.as_bytes(), |_| {}).unwrap_err();
    assert!(matches!(e, Error::AuditChain { line: 2, .. }), "editing line 1 breaks line 2's prev: {e}");
    let dropped = [&lines[..2], &lines[3..]].concat().join("\n") + "\n";
    assert!(matches!(audit::verify(dropped.as_bytes(), |_| {}).unwrap_err(), Error::AuditChain { line: 3, .. }));
    let torn = &text[..text.len() - 5];
    assert!(matches!(audit::verify(torn.as_bytes(), |_| {}).unwrap_err(), Error::AuditChain { line: 7, .. }));
}

/// Key material never appears in the audit log, refusals, errors or Debug output.
#[test]
fn key_material_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    let mut w = insecure_world("");
    let eph = HpkeSecretKey::generate();
    let mut seen = Vec::<String>::new();
    let mut s = spec(&w);
    for edit in 0..4 {
        match edit {
            1 => s.deterministic = false,
            2 => s.recipient = None,
            3 => s.limits.output_bytes = 1 << 30,
            _ => {}
        }
        let req = request(&mut w, &s, &eph);
        let d = w.broker.decide(&req, NOW);
        seen.push(format!("{d:?} {req:?}"));
        log.append(AuditEntry::new(&req, &d, NOW)).unwrap();
        if let Decision::Granted(g) = &d {
            let key = unwrap(Purpose::KeyRelease, &g.wrapped, &eph, &req.job.cid, &w.object).unwrap();
            seen.push(format!("{key:?}"));
            let e = open(&key, &b"VSEAL\x01\x01\x00"[..], Vec::new()).unwrap_err();
            seen.push(e.to_string());
            let e = open(
                &DataKey::generate(),
                &{
                    let mut v = Vec::new();
                    seal(&key, &b"x"[..], &mut v, SealOptions::default()).unwrap();
                    v
                }[..],
                Vec::new(),
            )
            .unwrap_err();
            seen.push(format!("{e} {e:?}"));
        }
    }
    seen.push(format!("{:?} {eph:?} {:?}", w.broker, w.lab));
    seen.push(std::fs::read_to_string(&path).unwrap());
    let all = seen.join("\n");
    let secrets = [w.key_bytes, *eph.expose_secret(), *w.lab.expose_secret()];
    for k in secrets {
        for needle in [
            hex::encode(k),
            hex::encode_upper(k),
            base64::engine::general_purpose::STANDARD.encode(k),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k),
            format!("{k:?}"),
            format!("{:02x?}", k),
        ] {
            assert!(!all.contains(&needle), "key material {needle} found");
        }
    }
    assert!(all.contains("granted") && all.contains("refused"), "the test looked at real output");
}

/// The fuzz body for key-request decoding, over truncations and byte flips: never a panic,
/// and a flipped byte is either refused or decodes to a request that differs.
#[test]
fn hostile_key_request_bytes_never_panic() {
    let mut w = insecure_world("");
    let s = spec(&w);
    let req = request(&mut w, &s, &HpkeSecretKey::generate());
    let bytes = req.encode(&s);
    for cut in 0..bytes.len() {
        assert!(KeyRequest::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x41;
        if let Ok(r) = KeyRequest::decode(&t) {
            assert_ne!(format!("{r:?}"), format!("{req:?}"), "flip at {i} decoded to the same request");
        }
    }
    let e = KeyRequest::decode(&vec![0u8; 4 << 20]).unwrap_err();
    assert!(matches!(e, Error::Wire { .. }), "{e}");
}
