//! TPM 2.0 evidence generation through `tss-esapi` 7.7 and the system's libtss2 (feature
//! `tpm-attester`).
//!
//! [`TpmAttester::open`] connects to a TPM through a TCTI string, reads the EK certificate from NV
//! (RSA 2048 at 0x01c00002, else NIST P-256 at 0x01c0000a), recreates the matching EK from the
//! TCG default template (and checks its key is the certificate's), and creates the attestation
//! key: an ECC P-256 restricted signing key (ECDSA / SHA-256), a *primary* key of the endorsement
//! hierarchy, so the same TPM always re-derives the same AK and an enrolment stays valid across
//! restarts without storing key blobs.
//!
//! TCTI strings are those `tss_esapi::TctiNameConf` parses:
//! - `device:/dev/tpmrm0` (the kernel's resource manager; `device:` alone means `/dev/tpm0`);
//! - `swtpm:host=127.0.0.1,port=2321` (swtpm's TCP server; its control channel is `port + 1`);
//! - `mssim:host=…,port=…` and `tabrmd:…`.
//!
//! Debian's libtss2-tcti-swtpm 3.2.1 also accepts `path=/x.sock` (a unix socket), but
//! tss-esapi 7.7's `TctiNameConf::Swtpm` can only express host and port, so swtpm is reached over
//! loopback TCP.
//!
//! The attester holds two transient objects (EK and AK) and flushes them on drop; every session
//! it starts is flushed before the call that started it returns. swtpm serves one client at a
//! time, so one attester per TPM.

use std::convert::TryFrom;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use tss_esapi::abstraction::ek;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, DefaultKey};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, DigestValues, EccPoint, EccScheme, EncryptedSecret, HashScheme, IdObject,
    KeyDerivationFunctionScheme, PcrSelectionListBuilder, PcrSlot, Public, PublicBuilder, PublicEccParametersBuilder,
    SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::ESYS_TR;

use crate::tpm::{EkPublic, Enrollment, PcrValue, TpmEvidence, wire};

/// Why evidence could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum AttesterError {
    #[error("TCTI {tcti:?}: {source}")]
    Tcti { tcti: String, source: tss_esapi::Error },
    #[error("{what}: {source}")]
    Tss { what: &'static str, source: tss_esapi::Error },
    #[error("{0}")]
    Other(String),
}

fn tss(what: &'static str) -> impl FnOnce(tss_esapi::Error) -> AttesterError {
    move |source| AttesterError::Tss { what, source }
}

/// Which default-template EK the attester uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EkKind {
    /// RSA 2048, template L-1, certificate at NV 0x01c00002 (swtpm_setup's default).
    Rsa2048,
    /// NIST P-256, template L-2, certificate at NV 0x01c0000a.
    EccP256,
}

impl EkKind {
    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
        }
    }

    /// NV index of the EK certificate.
    pub fn nv_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01c0_0002,
            EkKind::EccP256 => 0x01c0_000a,
        }
    }
}

/// An open TPM with its EK and AK loaded.
pub struct TpmAttester {
    ctx: tss_esapi::Context,
    ek: Option<KeyHandle>,
    ak: Option<KeyHandle>,
    ek_kind: EkKind,
    ek_public: Vec<u8>,
    ek_certificate: Option<Vec<u8>>,
    ak_public: Vec<u8>,
}

/// `TPM2B_PUBLIC` bytes of a tss-esapi `Public`.
fn tpm2b_public(public: &Public) -> Result<Vec<u8>, AttesterError> {
    let tpmt = public.marshall().map_err(tss("marshalling TPMT_PUBLIC"))?;
    let mut out = (tpmt.len() as u16).to_be_bytes().to_vec();
    out.extend(tpmt);
    Ok(out)
}

/// The attestation key template: ECC P-256, ECDSA / SHA-256, restricted signing, fixedTPM,
/// fixedParent, sensitiveDataOrigin, userWithAuth (empty auth).
fn ak_template() -> Result<Public, tss_esapi::Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_restricted(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .with_decrypt(false)
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::Null)
                .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
                .with_curve(EccCurve::NistP256)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_is_signing_key(true)
                .with_is_decryption_key(false)
                .with_restricted(true)
                .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

impl TpmAttester {
    /// Open the TPM at `tcti`, using the first EK kind that has a certificate in NV
    /// (RSA 2048, then P-256).
    pub fn open(tcti: &str) -> Result<Self, AttesterError> {
        let mut last = None;
        for kind in [EkKind::Rsa2048, EkKind::EccP256] {
            match Self::open_with(tcti, kind, true) {
                Ok(a) => return Ok(a),
                Err(e @ AttesterError::Tcti { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| AttesterError::Other("no EK".into())))
    }

    /// Open the TPM at `tcti` with the given EK kind. With `require_certificate` false, a missing
    /// EK certificate is tolerated (credential activation still works; evidence cannot be made).
    pub fn open_with(tcti: &str, ek_kind: EkKind, require_certificate: bool) -> Result<Self, AttesterError> {
        let conf = TctiNameConf::from_str(tcti).map_err(|source| AttesterError::Tcti { tcti: tcti.into(), source })?;
        let ctx = tss_esapi::Context::new(conf).map_err(|source| AttesterError::Tcti { tcti: tcti.into(), source })?;
        let mut this = TpmAttester {
            ctx,
            ek: None,
            ak: None,
            ek_kind,
            ek_public: Vec::new(),
            ek_certificate: None,
            ak_public: Vec::new(),
        };
        this.ek_certificate = match ek::retrieve_ek_pubcert(&mut this.ctx, ek_kind.selection()) {
            Ok(cert) => Some(cert),
            Err(e) if require_certificate => {
                return Err(AttesterError::Other(format!("no EK certificate at NV 0x{:08x}: {e}", ek_kind.nv_index())));
            }
            Err(_) => None,
        };

        let ek =
            ek::create_ek_object_2(&mut this.ctx, ek_kind.selection(), DefaultKey).map_err(tss("creating the EK"))?;
        this.ek = Some(ek);
        let (ek_public, _, _) = this.ctx.read_public(ek).map_err(tss("reading the EK public area"))?;
        this.ek_public = tpm2b_public(&ek_public)?;
        if let Some(cert) = &this.ek_certificate {
            let from_cert = EkPublic::from_certificate(cert).map_err(|e| AttesterError::Other(e.to_string()))?;
            let from_tpm =
                EkPublic::from_tpm2b_public(&this.ek_public).map_err(|e| AttesterError::Other(e.to_string()))?;
            if from_cert != from_tpm {
                return Err(AttesterError::Other(
                    "the EK from the default template is not the key of the EK certificate".into(),
                ));
            }
        }

        let template = ak_template().map_err(tss("building the AK template"))?;
        let ak = this
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map_err(tss("creating the AK"))?
            .key_handle;
        this.ak = Some(ak);
        let (ak_public, _, _) = this.ctx.read_public(ak).map_err(tss("reading the AK public area"))?;
        this.ak_public = tpm2b_public(&ak_public)?;
        Ok(this)
    }

    /// The EK kind in use.
    pub fn ek_kind(&self) -> EkKind {
        self.ek_kind
    }

    /// DER EK certificate read from NV, if there is one.
    pub fn ek_certificate(&self) -> Option<&[u8]> {
        self.ek_certificate.as_deref()
    }

    /// `TPM2B_PUBLIC` of the EK.
    pub fn ek_public(&self) -> &[u8] {
        &self.ek_public
    }

    /// `TPM2B_PUBLIC` of the AK.
    pub fn ak_public(&self) -> &[u8] {
        &self.ak_public
    }

    /// The AK's TPM name (`0x000b ‖ SHA-256(TPMT_PUBLIC)`), what a credential is made for.
    pub fn ak_name(&self) -> Result<Vec<u8>, AttesterError> {
        wire::parse_public(&self.ak_public).and_then(|p| p.name()).map_err(AttesterError::Other)
    }

    fn handles(&self) -> Result<(KeyHandle, KeyHandle), AttesterError> {
        match (self.ek, self.ak) {
            (Some(ek), Some(ak)) => Ok((ek, ak)),
            _ => Err(AttesterError::Other("EK or AK not loaded".into())),
        }
    }

    /// `TPM2_ActivateCredential` for a credential made (e.g. by [`crate::tpm::make_credential`])
    /// for this TPM's EK and AK name: returns the secret, or an error when the credential was made
    /// for another EK or another AK. Arguments are the TPM2B contents (without size prefixes).
    pub fn activate_credential(
        &mut self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, AttesterError> {
        let (ek, ak) = self.handles()?;
        let id_object = IdObject::try_from(credential_blob.to_vec()).map_err(tss("credential blob"))?;
        let secret = EncryptedSecret::try_from(encrypted_secret.to_vec()).map_err(tss("encrypted secret"))?;

        // The EK's policy (TCG default templates, policy A): PolicySecret(TPM_RH_ENDORSEMENT).
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tss("starting the EK policy session"))?
            .ok_or_else(|| AttesterError::Other("the TPM returned no policy session".into()))?;
        let (attributes, mask) = SessionAttributesBuilder::new().with_decrypt(true).with_encrypt(true).build();
        let object = ObjectHandle::from(SessionHandle::from(session));
        let result = self.ctx.execute_with_temporary_object(object, |ctx, _| {
            ctx.tr_sess_set_attributes(session, attributes, mask)?;
            ctx.execute_with_nullauth_session(|ctx| {
                ctx.policy_secret(
                    PolicySession::try_from(session)?,
                    AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })?;
            ctx.execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                ctx.activate_credential(ak, ek, id_object, secret)
            })
        });
        let digest = result.map_err(tss("TPM2_ActivateCredential"))?;
        Ok(digest.value().to_vec())
    }

    /// Extend PCR 23 (SHA-256 bank) with the SHA-256 of the running Vouch binary.
    pub fn extend_self_measurement(&mut self, sha256_of_binary: [u8; 32]) -> Result<(), AttesterError> {
        self.extend(crate::tpm::SELF_MEASUREMENT_PCR, sha256_of_binary)
    }

    /// Extend one PCR of the SHA-256 bank.
    pub fn extend(&mut self, pcr: u32, sha256: [u8; 32]) -> Result<(), AttesterError> {
        let handle = PcrHandle::try_from(pcr as ESYS_TR).map_err(tss("PCR handle"))?;
        let mut values = DigestValues::new();
        values.set(HashingAlgorithm::Sha256, Digest::try_from(sha256.to_vec()).map_err(tss("PCR digest"))?);
        self.ctx.execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values)).map_err(tss("TPM2_PCR_Extend"))
    }

    /// Read PCRs of the SHA-256 bank, ascending index.
    pub fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<Vec<PcrValue>, AttesterError> {
        let mut indices = pcrs.to_vec();
        indices.sort_unstable();
        indices.dedup();
        let mut out = Vec::with_capacity(indices.len());
        for index in indices {
            let selection = PcrSelectionListBuilder::new()
                .with_selection(HashingAlgorithm::Sha256, &[slot(index)?])
                .build()
                .map_err(tss("PCR selection"))?;
            let (_, _, digests) = self.ctx.pcr_read(selection).map_err(tss("TPM2_PCR_Read"))?;
            let digest = digests
                .value()
                .first()
                .ok_or_else(|| AttesterError::Other(format!("PCR {index} of the SHA-256 bank is not allocated")))?;
            out.push(PcrValue { index, sha256: digest.value().to_vec() });
        }
        Ok(out)
    }

    /// Quote `pcrs` (SHA-256 bank) with `binding` as qualifying data and assemble the evidence.
    /// The PCRs are read before and checked against the quote's digest (retried if a PCR changed
    /// in between).
    pub fn quote(
        &mut self,
        binding: [u8; 32],
        pcrs: &[u32],
        ak_binding: Enrollment,
        ek_chain: Vec<Vec<u8>>,
    ) -> Result<TpmEvidence, AttesterError> {
        let (_, ak) = self.handles()?;
        let ek_certificate =
            self.ek_certificate.clone().ok_or_else(|| AttesterError::Other("the TPM has no EK certificate".into()))?;
        let slots = pcrs.iter().map(|i| slot(*i)).collect::<Result<Vec<_>, _>>()?;
        for _ in 0..3 {
            let values = self.read_pcrs(pcrs)?;
            let selection = PcrSelectionListBuilder::new()
                .with_selection(HashingAlgorithm::Sha256, &slots)
                .build()
                .map_err(tss("PCR selection"))?;
            let data = Data::try_from(binding.to_vec()).map_err(tss("qualifying data"))?;
            let (attest, signature) = self
                .ctx
                .execute_with_nullauth_session(|ctx| ctx.quote(ak, data, SignatureScheme::Null, selection))
                .map_err(tss("TPM2_Quote"))?;
            let quote = attest.marshall().map_err(tss("marshalling TPMS_ATTEST"))?;
            let signature = signature.marshall().map_err(tss("marshalling TPMT_SIGNATURE"))?;
            let parsed = wire::parse_quote(&quote).map_err(AttesterError::Other)?;
            let mut h = Sha256::new();
            for v in &values {
                h.update(&v.sha256);
            }
            if h.finalize().as_slice() != parsed.pcr_digest.as_slice() {
                continue; // a PCR changed between the read and the quote
            }
            return Ok(TpmEvidence {
                quote,
                signature,
                ak_public: self.ak_public.clone(),
                pcrs: values,
                ek_certificate,
                ek_chain: ek_chain.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                ak_binding,
            });
        }
        Err(AttesterError::Other("PCRs kept changing between read and quote".into()))
    }
}

fn slot(index: u32) -> Result<PcrSlot, AttesterError> {
    if index >= 24 {
        return Err(AttesterError::Other(format!("PCR {index} (only 0..=23)")));
    }
    PcrSlot::try_from(1u32 << index).map_err(tss("PCR slot"))
}

impl Drop for TpmAttester {
    fn drop(&mut self) {
        for handle in [self.ak.take(), self.ek.take()].into_iter().flatten() {
            let _ = self.ctx.flush_context(ObjectHandle::from(handle));
        }
    }
}
