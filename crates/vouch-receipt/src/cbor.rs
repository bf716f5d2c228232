//! A serde serializer that writes canonical DAG-CBOR straight into one buffer.
//!
//! It produces the bytes `serde_ipld_dagcbor::to_vec` produces (the tests compare the two on
//! every shape this crate uses, and on random specs and receipts), but where that collects each
//! map entry in its own allocation and copies it into its parent, this one writes entries in
//! place and only moves them when a map's keys arrive out of canonical order. Encoding a
//! receipt body is on every job's path; it took 5–7 µs, as much as a third of the signature.
//!
//! Canonical DAG-CBOR: shortest heads, map keys are text strings sorted by encoded length then
//! bytewise (for text strings, sorting the encoded entries bytewise gives exactly that), floats
//! as 64-bit, CIDs as tag 42 over the bytes `0x00 ‖ CID`.

use std::fmt;

use serde::ser::{self, Serialize};

/// Why a value cannot be written as DAG-CBOR.
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, EncodeError>;

/// `value` as canonical DAG-CBOR, appended to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let mut enc = Encoder { out: std::mem::take(out), cid: false };
    let r = value.serialize(&mut enc);
    *out = enc.out;
    r
}

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
/// The tag of a CID.
const TAG_CID: u8 = 42;

struct Encoder {
    out: Vec<u8>,
    /// The next byte string is a CID's (set by the CID's newtype wrapper).
    cid: bool,
}

/// The shortest head of major type `major` with argument `n`.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The head of a map of `n` entries.
pub(crate) fn map_head_into(out: &mut Vec<u8>, n: u64) {
    head(out, MAJOR_MAP, n);
}

/// The entry count of the map `bytes` starts with, and the length of its head; `None` if
/// `bytes` does not start with a definite-length map head.
pub(crate) fn map_head(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    if first >> 5 != MAJOR_MAP {
        return None;
    }
    let arg = |len: usize| Some((bytes.get(1..1 + len)?.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)), 1 + len));
    match first & 0x1f {
        n @ 0..=23 => Some((n.into(), 1)),
        24 => arg(1),
        25 => arg(2),
        26 => arg(4),
        27 => arg(8),
        _ => None,
    }
}

impl Encoder {
    fn int(&mut self, v: i128) -> Result<()> {
        if v >= 0 {
            let n = u64::try_from(v).map_err(|_| EncodeError(format!("integer {v} is out of range")))?;
            head(&mut self.out, MAJOR_UINT, n);
        } else {
            let n = u64::try_from(-1 - v).map_err(|_| EncodeError(format!("integer {v} is out of range")))?;
            head(&mut self.out, MAJOR_NINT, n);
        }
        Ok(())
    }

    fn text(&mut self, s: &str) {
        head(&mut self.out, MAJOR_TEXT, s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Map<'a>;
    type SerializeStructVariant = Map<'a>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.push(if v { 0xf5 } else { 0xf4 });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.int(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        let v = i128::try_from(v).map_err(|_| EncodeError(format!("integer {v} is out of range")))?;
        self.int(v)
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        if !v.is_finite() {
            return Err(EncodeError("Float must be a finite number, not Infinity or NaN".into()));
        }
        let v = if v == 0.0 { 0.0 } else { v };
        self.out.push(0xfb);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.text(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.text(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        if std::mem::take(&mut self.cid) {
            self.out.extend_from_slice(&[0xd8, TAG_CID]);
            head(&mut self.out, MAJOR_BYTES, v.len() as u64 + 1);
            self.out.push(0);
        } else {
            head(&mut self.out, MAJOR_BYTES, v.len() as u64);
        }
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.out.push(0xf6);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.text(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<()> {
        if name == cid::serde::CID_SERDE_PRIVATE_IDENTIFIER {
            self.cid = true;
            value.serialize(&mut *self)?;
            if self.cid {
                return Err(EncodeError("a CID must serialize as bytes".into()));
            }
            return Ok(());
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        head(&mut self.out, MAJOR_MAP, 1);
        self.text(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>> {
        Ok(Seq::new(self, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>> {
        Ok(Seq::new(self, Some(len)))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>> {
        Ok(Seq::new(self, Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>> {
        head(&mut self.out, MAJOR_MAP, 1);
        self.text(variant);
        Ok(Seq::new(self, Some(len)))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'a>> {
        Ok(Map::new(self, None))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Map<'a>> {
        Ok(Map::new(self, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Map<'a>> {
        head(&mut self.out, MAJOR_MAP, 1);
        self.text(variant);
        Ok(Map::new(self, Some(len)))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// An array: its head first when its length is known, else inserted before its items at the end.
pub(crate) struct Seq<'a> {
    enc: &'a mut Encoder,
    /// Where the items begin, when the head is still to be written.
    unbounded: Option<usize>,
    count: u64,
}

impl<'a> Seq<'a> {
    fn new(enc: &'a mut Encoder, len: Option<usize>) -> Seq<'a> {
        let unbounded = match len {
            Some(n) => {
                head(&mut enc.out, MAJOR_ARRAY, n as u64);
                None
            }
            None => Some(enc.out.len()),
        };
        Seq { enc, unbounded, count: 0 }
    }

    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.count += 1;
        value.serialize(&mut *self.enc)
    }

    fn finish(self) -> Result<()> {
        if let Some(start) = self.unbounded {
            let mut h = Vec::with_capacity(9);
            head(&mut h, MAJOR_ARRAY, self.count);
            self.enc.out.splice(start..start, h);
        }
        Ok(())
    }
}

/// serde's four array-like traits, all [`Seq::item`] then [`Seq::finish`].
macro_rules! seq_impls {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.item(value)
            }
            fn end(self) -> Result<()> {
                self.finish()
            }
        }
    )*};
}
seq_impls!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// A map or struct: entries written in place, then put in canonical order.
pub(crate) struct Map<'a> {
    enc: &'a mut Encoder,
    /// Where the entries begin (after the head, if it was written first).
    start: usize,
    /// Where each entry begins.
    entries: Vec<usize>,
    /// The head is still to be written (a map: its length is counted).
    headless: bool,
}

impl<'a> Map<'a> {
    fn new(enc: &'a mut Encoder, len: Option<usize>) -> Map<'a> {
        if let Some(n) = len {
            head(&mut enc.out, MAJOR_MAP, n as u64);
        }
        let start = enc.out.len();
        Map { enc, start, entries: Vec::with_capacity(len.unwrap_or(8)), headless: len.is_none() }
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        let at = self.enc.out.len();
        self.entries.push(at);
        key.serialize(&mut *self.enc)?;
        match self.enc.out.get(at) {
            Some(b) if b >> 5 == MAJOR_TEXT => Ok(()),
            _ => Err(EncodeError("Map keys must be strings".into())),
        }
    }

    fn finish(self) -> Result<()> {
        let out = &mut self.enc.out;
        let end = out.len();
        let ranges: Vec<(usize, usize)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, self.entries.get(i + 1).copied().unwrap_or(end)))
            .collect();
        if ranges.windows(2).any(|w| out[w[0].0..w[0].1] > out[w[1].0..w[1].1]) {
            let body = out[self.start..end].to_vec();
            let mut sorted = ranges.clone();
            sorted.sort_unstable_by(|a, b| {
                body[a.0 - self.start..a.1 - self.start].cmp(&body[b.0 - self.start..b.1 - self.start])
            });
            out.truncate(self.start);
            for (s, e) in sorted {
                out.extend_from_slice(&body[s - self.start..e - self.start]);
            }
        }
        if self.headless {
            let mut h = Vec::with_capacity(9);
            head(&mut h, MAJOR_MAP, ranges.len() as u64);
            out.splice(self.start..self.start, h);
        }
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<()> {
        self.finish()
    }
}

/// serde's two struct traits: a field is a key and its value.
macro_rules! struct_impls {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Map<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
                self.key(key)?;
                value.serialize(&mut *self.enc)
            }
            fn end(self) -> Result<()> {
                self.finish()
            }
        }
    )*};
}
struct_impls!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use ipld_core::ipld::Ipld;
    use serde::Serialize;

    use super::*;

    fn ours<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(v, &mut out).unwrap();
        out
    }

    fn same<T: Serialize + ?Sized + fmt::Debug>(v: &T) {
        assert_eq!(ours(v), serde_ipld_dagcbor::to_vec(v).unwrap(), "{v:?}");
    }

    #[test]
    fn map_heads_read_back() {
        for n in [0u64, 1, 22, 23, 24, 255, 256, 65536, 1 << 32] {
            let mut out = Vec::new();
            map_head_into(&mut out, n);
            assert_eq!(map_head(&out), Some((n, out.len())));
        }
        assert_eq!(map_head(&[]), None);
        assert_eq!(map_head(&[0x80]), None, "an array");
        assert_eq!(map_head(&[0xb9, 1]), None, "truncated");
        assert_eq!(map_head(&[0xbf]), None, "indefinite length");
    }

    #[test]
    fn integers_at_every_head_boundary() {
        for n in [0u64, 1, 23, 24, 255, 256, 65535, 65536, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX] {
            same(&n);
        }
        for n in [-1i64, -24, -25, -256, -257, -65536, -65537, i32::MIN as i64, i64::MIN, i64::MAX] {
            same(&n);
        }
        same(&(u8::MAX, i8::MIN, u16::MAX, i16::MIN, u32::MAX, i32::MIN));
    }

    #[test]
    fn strings_bytes_floats_and_the_rest() {
        for len in [0, 1, 23, 24, 255, 256, 70_000] {
            same(&"x".repeat(len));
            same(&serde_bytes::ByteBuf::from(vec![7u8; len]));
        }
        for f in [0.0f64, -0.0, 1.5, -2.25, f64::MAX, f64::MIN_POSITIVE] {
            same(&f);
        }
        assert!(encode_into(&f64::NAN, &mut Vec::new()).is_err());
        same(&(true, false, None::<u8>, Some(3u8), (), 'é'));
        same(&vec![Some(1u8), None]);
    }

    #[test]
    fn maps_sort_length_first_then_bytewise_at_every_depth() {
        let mut m: BTreeMap<String, BTreeMap<String, u8>> = BTreeMap::new();
        for k in ["b", "aa", "a", "ab", "ba", "c", "zzz", "", "abc"] {
            let inner: BTreeMap<String, u8> = [("yy", 1), ("x", 2), ("xz", 3)].map(|(a, b)| (a.into(), b)).into();
            m.insert(k.into(), inner);
        }
        same(&m);
        let h: HashMap<String, u32> = (0..100).map(|i| (format!("k{}", i * 7919 % 1000), i)).collect();
        same(&h);
        same(&BTreeMap::<String, u8>::new());
        // Keys must be text.
        let bad: BTreeMap<u8, u8> = [(1, 2)].into();
        assert!(encode_into(&bad, &mut Vec::new()).is_err());
    }

    #[test]
    fn structs_enums_and_cids() {
        #[derive(Serialize, Debug)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, String),
            Struct { zz: u8, a: Vec<u8> },
        }
        #[derive(Serialize, Debug)]
        struct S {
            version: u64,
            job: cid::Cid,
            #[serde(skip_serializing_if = "Option::is_none")]
            output: Option<cid::Cid>,
            e: Vec<E>,
            #[serde(with = "serde_bytes")]
            key: [u8; 32],
            nested: Option<Box<S>>,
        }
        let cid = crate::codec::cid_of(b"x");
        let s = S {
            version: 1,
            job: cid,
            output: None,
            e: vec![E::Unit, E::New(4), E::Tuple(5, "t".into()), E::Struct { zz: 1, a: vec![1, 2] }],
            key: [9; 32],
            nested: Some(Box::new(S {
                version: 2,
                job: cid,
                output: Some(cid),
                e: vec![],
                key: [0; 32],
                nested: None,
            })),
        };
        same(&s);
        let ipld = ipld_core::serde::to_ipld(&s).unwrap();
        same(&ipld);
        same(&Ipld::List(vec![Ipld::Link(cid), Ipld::Null, Ipld::Float(0.5), Ipld::Integer(-5)]));
    }
}
