//! The trustless gateway subset: `GET|HEAD /ipfs/{cid}[/path]` answered with the raw block or a
//! CARv1, never with deserialized content, so clients verify what they get without trusting
//! this node. Spec: the IPFS trustless gateway specification; what is implemented:
//! `docs/http-api.md`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vouch_dag::block::{IDENTITY, parse_cid};
use vouch_dag::car::{CarWriter, walk_dag};
use vouch_dag::{BlockSource, Cid, DagError, export};
use vouch_store::{Store, StoreError};

use crate::api::{ApiError, AppState, blocking, query, store_error, stream_blocking};

pub(crate) const RAW: &str = "application/vnd.ipld.raw";
pub(crate) const CAR: &str = "application/vnd.ipld.car";
/// What CAR responses are: version 1, depth-first pre-order, each block once.
const CAR_CONTENT_TYPE: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Raw,
    Car,
}

/// `?format=` wins over `Accept`; in `Accept` the first supported media type listed wins (a CAR
/// asking for a version other than 1 is not supported).
pub(crate) fn negotiate(format: Option<&str>, accept: Option<&str>) -> Result<Format, ApiError> {
    match format {
        Some("raw") => return Ok(Format::Raw),
        Some("car") => return Ok(Format::Car),
        Some(other) => return Err(ApiError::bad_request(format!("unsupported format {other:?}: use raw or car"))),
        None => {}
    }
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut params = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.trim(), v.trim().trim_matches('"')));
        match media.as_str() {
            RAW => return Ok(Format::Raw),
            CAR if params.all(|(k, v)| k != "version" || v == "1") => return Ok(Format::Car),
            _ => {}
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        format!(
            "this is a trustless gateway: send Accept: {RAW} or {CAR} (version=1), or ?format=raw|car (got Accept: {})",
            accept.unwrap_or("none")
        ),
    ))
}

#[derive(Deserialize)]
struct GatewayQuery {
    format: Option<String>,
}

/// A [`BlockSource`] over the store that records every block read: the blocks a path walk
/// traverses, which a CAR response carries so the client can verify the path from the root.
struct Recording<'a> {
    store: &'a Store,
    read: RefCell<Vec<Cid>>,
}

impl BlockSource for Recording<'_> {
    type Error = StoreError;
    fn get(&self, cid: &Cid) -> Result<Vec<u8>, StoreError> {
        let data = self.store.get(cid)?;
        self.read.borrow_mut().push(*cid);
        Ok(data)
    }
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q: GatewayQuery = query(&uri)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = negotiate(q.format.as_deref(), accept)?;
    let cid_text = params.get("cid").map(String::as_str).unwrap_or("");
    let root = parse_cid(cid_text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let path = params.get("path").cloned().unwrap_or_default();
    let content_path = if path.is_empty() { format!("/ipfs/{root}") } else { format!("/ipfs/{root}/{path}") };
    let store = s.store.clone();
    let (cid, body, content_type, etag, filename) = match format {
        Format::Raw => {
            let (cid, data) = blocking(move || {
                let cid = export::resolve(&*store, &root, &path).map_err(store_error)?;
                Ok((cid, store.get(&cid).map_err(store_error)?))
            })
            .await?;
            (cid, axum::body::Body::from(data), RAW, format!("\"{cid}.raw\""), format!("{cid}.bin"))
        }
        Format::Car => {
            let (cid, traversed) = blocking(move || {
                let rec = Recording { store: &store, read: RefCell::new(Vec::new()) };
                let cid = export::resolve(&rec, &root, &path).map_err(store_error)?;
                // The terminal block must be here before the headers go out; a block missing
                // deeper in the DAG cuts the stream (the client sees a truncated CAR).
                if cid.hash().code() != IDENTITY && !store.has(&cid).map_err(store_error)? {
                    return Err(store_error(StoreError::NotFound { cid }));
                }
                Ok((cid, rec.read.into_inner()))
            })
            .await?;
            let store = s.store.clone();
            let body = stream_blocking(move |w| write_car(&store, cid, &traversed, w).map_err(|e| e.to_string()));
            (cid, body, CAR_CONTENT_TYPE, format!("W/\"{cid}.car\""), format!("{cid}.car"))
        }
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        // Cannot fail: CIDs, paths from a parsed URI and our constants are visible ASCII.
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, content_type.to_string());
    set(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""));
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    set(header::CACHE_CONTROL, "public, max-age=29030400, immutable".into());
    set(header::ETAG, etag);
    set(header::VARY, "Accept".into());
    set(header::HeaderName::from_static("x-ipfs-path"), content_path);
    set(header::HeaderName::from_static("x-ipfs-roots"), cid.to_string());
    Ok(response)
}

/// A CARv1 with root `cid`: the blocks the path walk traversed, then the DAG under `cid`
/// (pre-order), each block once.
fn write_car(store: &Store, cid: Cid, traversed: &[Cid], w: impl std::io::Write) -> Result<(), StoreError> {
    let io = |e| StoreError::Dag(DagError::Io(e));
    let mut car = CarWriter::new(w, &[cid]).map_err(io)?;
    let mut written = HashSet::new();
    for c in traversed {
        if c.hash().code() != IDENTITY && written.insert(*c) {
            car.write(c, &store.get(c)?).map_err(io)?;
        }
    }
    walk_dag(store, &cid, |c, data| if written.contains(c) { Ok(()) } else { car.write(c, data).map_err(io) })?;
    car.finish().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("car"), Some(RAW)).unwrap(), Format::Car);
        assert_eq!(negotiate(None, Some(RAW)).unwrap(), Format::Raw);
        assert_eq!(negotiate(None, Some("text/html, application/vnd.ipld.car; version=1")).unwrap(), Format::Car);
        assert_eq!(
            negotiate(None, Some("application/vnd.ipld.car;version=2, application/vnd.ipld.raw")).unwrap(),
            Format::Raw
        );
        assert_eq!(negotiate(None, Some("text/html")).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(negotiate(None, None).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("tar"), None).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
