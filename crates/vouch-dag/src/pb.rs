//! The few protobuf primitives dag-pb and UnixFS need: varints and length-delimited fields.
//!
//! Written by hand rather than through a protobuf crate: the import hot path encodes one node per
//! 256 KiB chunk and must write the chunk once, in Kubo's exact field order, without building an
//! intermediate message; decoding must be strict (dag-pb's canonical form) and allocation-free.

pub(crate) const WT_VARINT: u8 = 0;
pub(crate) const WT_I64: u8 = 1;
pub(crate) const WT_LEN: u8 = 2;
pub(crate) const WT_I32: u8 = 5;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WT_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn put_u64(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, WT_VARINT);
    put_varint(out, v);
}

/// A cursor over protobuf bytes; every read is bounds-checked and returns a reason on failure.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err("varint is not minimally encoded");
                }
                return Ok(v);
            }
        }
        Err("varint overflows 64 bits")
    }

    /// A field key: (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u64, u8), &'static str> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| "length does not fit in memory")?;
        let end = self.pos.checked_add(len).ok_or("length overflows")?;
        let out = self.buf.get(self.pos..end).ok_or("length runs past the end of the block")?;
        self.pos = end;
        Ok(out)
    }

    /// Skip a field of the given wire type (for unknown UnixFS fields).
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), &'static str> {
        let n = match wire_type {
            WT_VARINT => return self.varint().map(drop),
            WT_LEN => return self.bytes().map(drop),
            WT_I64 => 8,
            WT_I32 => 4,
            _ => return Err("unsupported wire type"),
        };
        self.fixed(n).map(drop)
    }

    pub(crate) fn fixed(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let out = self.buf.get(self.pos..self.pos + n).ok_or("truncated fixed-width field")?;
        self.pos += n;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_len() {
        for v in [0u64, 1, 127, 128, 300, 16383, 16384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(Reader::new(&out).varint().unwrap(), v);
        }
    }

    #[test]
    fn rejects_bad_varints() {
        assert_eq!(Reader::new(&[0x80]).varint(), Err("truncated varint"));
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err("varint is not minimally encoded"));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err("varint overflows 64 bits"));
    }
}
