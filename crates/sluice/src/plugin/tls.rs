//! TLS for network plugins: `<transport tls>` of servers (in_forward,
//! in_http) and the `tls_*` parameters of out_forward, on rustls.
//!
//! Server certificates come, as in Fluentd's server helper, from
//! `cert_path` + `private_key_path` (PEM, the key optionally encrypted
//! PKCS#8 with `private_key_passphrase`), or are generated at start: signed
//! by `ca_cert_path` + `ca_private_key_path`, or self-signed. TLS 1.2 and
//! 1.3 only (`version TLSv1_1` is refused); `ciphers` is an OpenSSL string
//! rustls cannot honour, so it is accepted with a warning.

use super::BuildCx;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sluice_config::{Element, ParamEnum, Params};
use std::net::IpAddr;
use std::sync::Arc;

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum TlsVersion {
    /// TLS 1.1 (refused: rustls does not implement it).
    #[value = "TLSv1_1"]
    Tls11,
    /// TLS 1.2.
    #[value = "TLSv1_2"]
    Tls12,
    /// TLS 1.3.
    #[value = "TLSv1_3"]
    Tls13,
    /// Same as TLSv1_1.
    #[value = "TLS1_1"]
    Tls11b,
    /// Same as TLSv1_2.
    #[value = "TLS1_2"]
    Tls12b,
    /// Same as TLSv1_3.
    #[value = "TLS1_3"]
    Tls13b,
}

impl TlsVersion {
    fn rank(self) -> u8 {
        match self {
            TlsVersion::Tls11 | TlsVersion::Tls11b => 1,
            TlsVersion::Tls12 | TlsVersion::Tls12b => 2,
            TlsVersion::Tls13 | TlsVersion::Tls13b => 3,
        }
    }
}

/// `<transport tls>` of a server.
#[derive(Debug, Clone, Params)]
pub struct ServerTlsParams {
    /// Protocol version (without min/max: this version and newer).
    #[param(default = "TLSv1_2")]
    pub version: TlsVersion,
    /// Lowest version.
    pub min_version: Option<TlsVersion>,
    /// Highest version.
    pub max_version: Option<TlsVersion>,
    /// OpenSSL cipher list (not applicable to rustls: accepted with a warning).
    pub ciphers: Option<String>,
    /// Skip certificate checks of clients (with `client_cert_auth`).
    #[param(default = "false")]
    pub insecure: bool,
    /// CA certificates (PEM) that client certificates must chain to.
    pub ca_path: Option<String>,
    /// Server certificate chain (PEM).
    pub cert_path: Option<String>,
    /// Server private key (PEM).
    pub private_key_path: Option<String>,
    /// Passphrase of an encrypted private key.
    #[param(secret)]
    pub private_key_passphrase: Option<String>,
    /// Require and verify client certificates.
    #[param(default = "false")]
    pub client_cert_auth: bool,
    /// CA certificate used to sign a generated server certificate.
    pub ca_cert_path: Option<String>,
    /// Private key of that CA.
    pub ca_private_key_path: Option<String>,
    /// Passphrase of the CA key.
    #[param(secret)]
    pub ca_private_key_passphrase: Option<String>,
    /// Common name of a generated certificate (default: the host name).
    pub generate_cert_common_name: Option<String>,
    /// Country of a generated certificate.
    #[param(default = "US")]
    pub generate_cert_country: String,
    /// State of a generated certificate.
    #[param(default = "CA")]
    pub generate_cert_state: String,
    /// Locality of a generated certificate.
    #[param(default = "Mountain View")]
    pub generate_cert_locality: String,
    /// Lifetime of a generated certificate, seconds.
    #[param(default = "315360000")]
    pub generate_cert_expiration: u64,
    /// Key size of a generated certificate (sluice generates ECDSA P-256 keys; accepted).
    #[param(default = "2048")]
    pub generate_private_key_length: u32,
    /// Digest of a generated certificate (accepted).
    #[param(default = "sha256")]
    pub generate_cert_digest: String,
    /// Custom verifier script (not supported: warning).
    pub cert_verifier: Option<String>,
    /// SO_LINGER timeout.
    #[param(default = "0")]
    pub linger_timeout: u32,
}

fn versions(
    v: TlsVersion,
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let (lo, hi) = match (min, max) {
        (None, None) => (v.rank(), 3),
        (lo, hi) => (lo.map_or(2, TlsVersion::rank), hi.map_or(3, TlsVersion::rank)),
    };
    if lo < 2 {
        return Err("TLS 1.1 is not supported (use TLSv1_2 or TLSv1_3)".into());
    }
    if lo > hi {
        return Err("min_version is greater than max_version".into());
    }
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// Read PEM certificates.
///
/// # Errors
/// A message naming the file.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates from {path}: {e}"))?
        .collect();
    let certs = certs.map_err(|e| format!("invalid certificate in {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {path}"));
    }
    Ok(certs)
}

/// Read a PEM private key, decrypting an `ENCRYPTED PRIVATE KEY` with `passphrase`.
///
/// # Errors
/// A message naming the file.
pub fn load_key(path: &str, passphrase: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read private key {path}: {e}"))?;
    if text.contains("ENCRYPTED PRIVATE KEY") {
        let Some(pass) = passphrase else {
            return Err(format!("private key {path} is encrypted: set its passphrase"));
        };
        use pkcs8::der::Decode;
        let (_, doc) =
            pkcs8::SecretDocument::from_pem(&text).map_err(|e| format!("invalid private key {path}: {e}"))?;
        let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
            .map_err(|e| format!("invalid private key {path}: {e}"))?;
        let plain = enc.decrypt(pass).map_err(|_| format!("cannot decrypt private key {path}: wrong passphrase?"))?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "private key {path} uses legacy OpenSSL PEM encryption: convert it with `openssl pkcs8 -topk8`"
        ));
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| format!("invalid private key {path}: {e}"))
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A generated certificate and key (self-signed, or signed by a CA).
///
/// # Errors
/// Generation or CA loading failures.
pub fn generate_cert(
    p: &ServerTlsParams,
    hostname: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cn = p.generate_cert_common_name.clone().unwrap_or_else(|| hostname.to_string());
    let mut params = rcgen::CertificateParams::new(vec![cn.clone(), "localhost".into()]).map_err(|e| e.to_string())?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, p.generate_cert_country.as_str());
    dn.push(rcgen::DnType::StateOrProvinceName, p.generate_cert_state.as_str());
    dn.push(rcgen::DnType::LocalityName, p.generate_cert_locality.as_str());
    dn.push(rcgen::DnType::CommonName, cn.as_str());
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(p.generate_cert_expiration)).into();
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = match (&p.ca_cert_path, &p.ca_private_key_path) {
        (Some(ca), Some(ca_key)) => {
            let ca_pem = std::fs::read_to_string(ca).map_err(|e| format!("cannot read {ca}: {e}"))?;
            let ca_key_der = load_key(ca_key, p.ca_private_key_passphrase.as_deref())?;
            let ca_kp =
                rcgen::KeyPair::try_from(&ca_key_der).map_err(|e| format!("unsupported CA key {ca_key}: {e}"))?;
            let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_kp)
                .map_err(|e| format!("invalid CA certificate {ca}: {e}"))?;
            params.signed_by(&key, &issuer).map_err(|e| e.to_string())?
        }
        _ => params.self_signed(&key).map_err(|e| e.to_string())?,
    };
    Ok((vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into())))
}

fn server_config_inner(p: &ServerTlsParams, hostname: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let vers = versions(p.version, p.min_version, p.max_version)?;
    let (certs, key) = match (&p.cert_path, &p.private_key_path) {
        (Some(c), Some(k)) => (load_certs(c)?, load_key(k, p.private_key_passphrase.as_deref())?),
        (Some(_), None) => return Err("private_key_path is required with cert_path".into()),
        _ => generate_cert(p, hostname)?,
    };
    let builder =
        rustls::ServerConfig::builder_with_provider(ring()).with_protocol_versions(&vers).map_err(|e| e.to_string())?;
    let builder = if p.client_cert_auth {
        let Some(ca) = &p.ca_path else {
            return Err("client_cert_auth needs ca_path".into());
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(ca)? {
            roots.add(c).map_err(|e| format!("invalid CA certificate in {ca}: {e}"))?;
        }
        let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), ring())
            .build()
            .map_err(|e| e.to_string())?;
        builder.with_client_cert_verifier(v)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder.with_single_cert(certs, key).map_err(|e| format!("certificate and key do not match: {e}"))?;
    Ok(Arc::new(cfg))
}

fn read_server(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<ServerTlsParams> {
    cx.cfg.path.push(el.display_name());
    let p = ServerTlsParams::from_element(el, cx.cfg);
    cx.cfg.path.pop();
    let p = p?;
    if p.ciphers.is_some() {
        cx.cfg.warn(
            el.param("ciphers").map_or(el.span, |x| x.key_span),
            "ciphers is an OpenSSL cipher list; sluice uses rustls' secure defaults and ignores it",
        );
    }
    if p.cert_verifier.is_some() {
        cx.cfg.warn(
            el.param("cert_verifier").map_or(el.span, |x| x.key_span),
            "cert_verifier (a Ruby script) is not supported and is ignored",
        );
    }
    if let Err(e) = versions(p.version, p.min_version, p.max_version) {
        cx.cfg.error(el.param("version").or_else(|| el.param("min_version")).map_or(el.span, |x| x.value_span), e);
        return None;
    }
    Some(p)
}

/// Check `<transport tls>` without touching files (`--dry-run`).
pub fn check_server(el: &Element, cx: &mut BuildCx<'_, '_>) {
    let _ = read_server(el, cx);
}

/// Build the server TLS configuration.
pub fn server_config(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<rustls::ServerConfig>> {
    let p = read_server(el, cx)?;
    match server_config_inner(&p, &cx.env.hostname) {
        Ok(c) => Some(c),
        Err(e) => {
            cx.cfg.error(el.span, e);
            None
        }
    }
}

/// Client TLS settings (out_forward's `tls_*`).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Verify the server's name.
    pub verify_hostname: bool,
    /// CA certificates to trust (PEM files); empty: the system's.
    pub ca_paths: Vec<String>,
    /// Client certificate (PEM).
    pub client_cert: Option<String>,
    /// Client key (PEM).
    pub client_key: Option<String>,
    /// Its passphrase.
    pub client_key_passphrase: Option<String>,
    /// Accept self-signed server certificates.
    pub allow_self_signed: bool,
    /// Accept any certificate (`tls_insecure_mode`).
    pub insecure: bool,
    /// Version bounds.
    pub version: Option<TlsVersion>,
}

/// Verifies nothing (`tls_insecure_mode`).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Build a client TLS configuration.
///
/// # Errors
/// Unreadable or invalid certificate files.
pub fn client_config(t: &ClientTls) -> Result<Arc<rustls::ClientConfig>, String> {
    let vers = versions(t.version.unwrap_or(TlsVersion::Tls12), None, None)?;
    let b =
        rustls::ClientConfig::builder_with_provider(ring()).with_protocol_versions(&vers).map_err(|e| e.to_string())?;
    // As in Fluentd, tls_allow_self_signed_cert does not skip verification:
    // the self-signed certificate is trusted by listing it in tls_cert_path.
    let b = if t.insecure {
        b.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(ring())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if t.ca_paths.is_empty() {
            for p in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"] {
                if let Ok(certs) = load_certs(p) {
                    let _ = roots.add_parsable_certificates(certs);
                    break;
                }
            }
        }
        for p in &t.ca_paths {
            for c in load_certs(p)? {
                roots.add(c).map_err(|e| format!("invalid CA certificate in {p}: {e}"))?;
            }
        }
        b.with_root_certificates(roots)
    };
    let cfg = match (&t.client_cert, &t.client_key) {
        (Some(c), Some(k)) => b
            .with_client_auth_cert(load_certs(c)?, load_key(k, t.client_key_passphrase.as_deref())?)
            .map_err(|e| format!("client certificate and key do not match: {e}"))?,
        _ => b.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Reverse DNS of an address (`None` if it has no name).
pub fn reverse_lookup(ip: IpAddr) -> Option<String> {
    let sa = socket2::SockAddr::from(std::net::SocketAddr::new(ip, 0));
    let mut host = [0u8; 1025];
    #[allow(unsafe_code)]
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes; `host` is
    // writable for its full length, which is what we pass; no service buffer.
    let r = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast(),
            sa.len(),
            host.as_mut_ptr().cast(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if r != 0 {
        return None;
    }
    let end = host.iter().position(|b| *b == 0).unwrap_or(host.len());
    Some(String::from_utf8_lossy(&host[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_rustls() {
        assert_eq!(versions(TlsVersion::Tls12, None, None).unwrap().len(), 2);
        assert_eq!(versions(TlsVersion::Tls13, None, None).unwrap().len(), 1);
        assert!(versions(TlsVersion::Tls11, None, None).is_err());
        assert!(versions(TlsVersion::Tls12, Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)).is_err());
    }

    #[test]
    fn generated_and_encrypted_keys() {
        let dir = tempfile::tempdir().unwrap();
        // A CA, and a server certificate generated from it.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        // The CA key encrypted with a passphrase (PKCS#8).
        use pkcs8::der::Decode;
        let der = ca_key.serialize_der();
        let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
        let enc = info.encrypt(rand_core_os(), "your_secret").unwrap();
        std::fs::write(
            dir.path().join("ca.key"),
            enc.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF).unwrap().as_str(),
        )
        .unwrap();
        let p = |extra: &str| -> ServerTlsParams {
            let text = format!("<transport tls>\n{extra}\n</transport>\n");
            let mut sm = sluice_config::SourceMap::new();
            let mut d = sluice_config::Diagnostics::new(false);
            let root = sluice_config::parse_str(
                std::path::Path::new("t"),
                "t",
                text,
                &sluice_config::parser::NoEval,
                &mut sm,
                &mut d,
            )
            .unwrap();
            let mut cfg = sluice_config::ConfigureCx::new(&mut d);
            ServerTlsParams::from_element(&root.elements[0], &mut cfg).unwrap()
        };
        let d = dir.path().display();
        let ok = p(&format!(
            "ca_cert_path {d}/ca.pem\nca_private_key_path {d}/ca.key\nca_private_key_passphrase your_secret"
        ));
        assert!(server_config_inner(&ok, "host").is_ok());
        let bad =
            p(&format!("ca_cert_path {d}/ca.pem\nca_private_key_path {d}/ca.key\nca_private_key_passphrase nope"));
        assert!(server_config_inner(&bad, "host").unwrap_err().contains("wrong passphrase"));
        // Self-signed when nothing is given; a dummy certificate file is refused.
        assert!(server_config_inner(&p(""), "host").is_ok());
        std::fs::write(dir.path().join("dummy.pem"), "not a certificate").unwrap();
        let dummy = p(&format!("cert_path {d}/dummy.pem\nprivate_key_path {d}/dummy.pem"));
        assert!(server_config_inner(&dummy, "host").is_err());
    }

    fn rand_core_os() -> impl pkcs8::rand_core::CryptoRngCore {
        pkcs8::rand_core::OsRng
    }
}
