//! A job result sealed to its recipient: an envelope with the data key HPKE-wrapped
//! ([`Purpose::Result`]) to the recipient's long-term key, followed by the sealed object.
//!
//! ```text
//! result = "VSENV" ‖ version=1 ‖ recipient[32] ‖ enc[32] ‖ wrapped[48] ‖ len:u8 ‖ job CID ‖ sealed object
//! ```
//! The wrap's AAD binds the job CID and the sealed object's id; the data key exists only
//! inside the runtime while sealing and is zeroized afterwards.

use std::io::{Read, Write};

use cid::Cid;

use crate::key::DataKey;
use crate::stream::{Header, OpenSummary, Opener, SealOptions, SealSummary, Sealer};
use crate::wrap::{HpkePublicKey, HpkeSecretKey, Purpose, WrappedKey, unwrap, wrap};
use crate::{Error, Result};

/// The first bytes of a sealed result.
pub const ENVELOPE_MAGIC: &[u8; 5] = b"VSENV";

/// Seal `plaintext` to `recipient` for job `job` into `out`.
pub fn seal_result(
    recipient: &HpkePublicKey,
    job: &Cid,
    plaintext: impl Read,
    mut out: impl Write,
    opts: SealOptions,
) -> Result<SealSummary> {
    let key = DataKey::generate();
    let mut s = Sealer::new(&key, plaintext, opts)?;
    let w = wrap(Purpose::Result, &key, recipient, job, &s.header().object)?;
    drop(key);
    let cid = job.to_bytes();
    let mut env = Vec::with_capacity(120 + cid.len());
    env.extend_from_slice(ENVELOPE_MAGIC);
    env.push(1);
    env.extend_from_slice(&recipient.0);
    env.extend_from_slice(&w.enc);
    env.extend_from_slice(&w.ciphertext);
    // CIDs here are far shorter than 255 bytes (sha2-256: 36).
    env.push(u8::try_from(cid.len()).map_err(|_| Error::BadEnvelope { problem: "job CID too long".into() })?);
    env.extend_from_slice(&cid);
    out.write_all(&env).map_err(Error::io("writing the sealed result"))?;
    let header = s.header().clone();
    out.write_all(header.as_bytes()).map_err(Error::io("writing the sealed result"))?;
    let (mut plaintext_bytes, mut sealed_bytes, mut chunks) =
        (0u64, (env.len() + header.as_bytes().len()) as u64, 0u64);
    while let Some(c) = s.next_chunk()? {
        out.write_all(c).map_err(Error::io("writing the sealed result"))?;
        sealed_bytes += c.len() as u64;
        plaintext_bytes += (c.len() - crate::stream::TAG_LEN) as u64;
        chunks += 1;
    }
    out.flush().map_err(Error::io("writing the sealed result"))?;
    Ok(SealSummary { header, plaintext_bytes, sealed_bytes, chunks })
}

/// Open a sealed result with the recipient's secret key into `out`; returns the job CID the
/// result is bound to (check it against the receipt's `job`).
pub fn open_result(secret: &HpkeSecretKey, mut sealed: impl Read, mut out: impl Write) -> Result<(Cid, OpenSummary)> {
    let bad = |p: &str| Error::BadEnvelope { problem: p.to_owned() };
    let mut fixed = [0u8; 5 + 1 + 32 + 32 + 48 + 1];
    sealed.read_exact(&mut fixed).map_err(|_| bad("truncated envelope"))?;
    if &fixed[..5] != ENVELOPE_MAGIC {
        return Err(bad("not a sealed result (magic is not VSENV)"));
    }
    if fixed[5] != 1 {
        return Err(bad(&format!("version {} is not supported (this build reads 1)", fixed[5])));
    }
    let recipient = HpkePublicKey::from_slice("recipient", &fixed[6..38])?;
    if recipient != secret.public() {
        return Err(bad(&format!("sealed to {recipient}, not to this key {}", secret.public())));
    }
    let mut w = WrappedKey { enc: [0; 32], ciphertext: [0; 48] };
    w.enc.copy_from_slice(&fixed[38..70]);
    w.ciphertext.copy_from_slice(&fixed[70..118]);
    let mut cid = vec![0u8; usize::from(fixed[118])];
    sealed.read_exact(&mut cid).map_err(|_| bad("truncated job CID"))?;
    let job = Cid::try_from(cid.as_slice()).map_err(|e| bad(&format!("job CID: {e}")))?;
    let header = Header::read_from(&mut sealed)?;
    let key = unwrap(Purpose::Result, &w, secret, &job, &header.object)?;
    let mut o = Opener::after_header(&key, header, sealed)?;
    let mut chunks = 0;
    while let Some(c) = o.next_chunk()? {
        out.write_all(c).map_err(Error::io("writing the plaintext"))?;
        chunks += 1;
    }
    let header = o.header().clone();
    Ok((job, OpenSummary { header, plaintext_bytes: o.plaintext_bytes(), chunks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trip_and_wrong_recipient() {
        let sk = HpkeSecretKey::generate();
        let job: Cid = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy".parse().unwrap();
        let data = vec![3u8; 300];
        let mut out = Vec::new();
        seal_result(&sk.public(), &job, &data[..], &mut out, SealOptions { chunk_size: 128 }).unwrap();
        let mut plain = Vec::new();
        let (j, s) = open_result(&sk, &out[..], &mut plain).unwrap();
        assert_eq!((j, plain, s.plaintext_bytes), (job, data, 300));
        let other = HpkeSecretKey::generate();
        assert!(matches!(open_result(&other, &out[..], Vec::new()), Err(Error::BadEnvelope { .. })));
        // A flipped byte in the wrapped key fails the unwrap, naming the purpose.
        let mut t = out.clone();
        t[80] ^= 1;
        assert!(matches!(open_result(&sk, &t[..], Vec::new()), Err(Error::Unwrap { purpose: "result", .. })));
    }
}
