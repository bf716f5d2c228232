//! DAG-JSON views of blocks, as `ipfs dag get` prints them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use cid::Cid;
use ipld_core::ipld::Ipld;
use serde_json::{Map, Value, json};

use crate::DagError;
use crate::block::{DAG_CBOR, DAG_PB, RAW};
use crate::dagpb::PbNode;

fn bytes(b: &[u8]) -> Value {
    json!({"/": {"bytes": STANDARD_NO_PAD.encode(b)}})
}

fn link(c: &Cid) -> Value {
    json!({"/": c.to_string()})
}

/// The DAG-JSON form of a block.
pub fn to_json(cid: &Cid, data: &[u8]) -> Result<Value, DagError> {
    match cid.codec() {
        DAG_PB => {
            let node = PbNode::decode(cid, data)?;
            let mut m = Map::new();
            if let Some(d) = node.data {
                m.insert("Data".into(), bytes(d));
            }
            let links = node
                .links
                .iter()
                .map(|l| {
                    let mut lm = Map::new();
                    lm.insert("Hash".into(), link(&l.cid));
                    if let Some(n) = &l.name {
                        lm.insert("Name".into(), Value::String(n.clone()));
                    }
                    if let Some(t) = l.tsize {
                        lm.insert("Tsize".into(), t.into());
                    }
                    Value::Object(lm)
                })
                .collect();
            m.insert("Links".into(), Value::Array(links));
            Ok(Value::Object(m))
        }
        DAG_CBOR => {
            let ipld: Ipld = serde_ipld_dagcbor::from_slice(data)
                .map_err(|e| DagError::InvalidDagCbor { cid: *cid, reason: e.to_string() })?;
            Ok(ipld_to_json(&ipld))
        }
        RAW => Ok(bytes(data)),
        codec => Err(DagError::UnsupportedCodec { cid: *cid, codec }),
    }
}

fn ipld_to_json(i: &Ipld) -> Value {
    match i {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(n) => i64::try_from(*n).map(Value::from).unwrap_or_else(|_| Value::String(n.to_string())),
        Ipld::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(b) => bytes(b),
        Ipld::List(l) => Value::Array(l.iter().map(ipld_to_json).collect()),
        Ipld::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), ipld_to_json(v))).collect()),
        Ipld::Link(c) => link(c),
    }
}
