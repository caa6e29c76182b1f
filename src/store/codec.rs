//! Little-endian encoding of the durable files' contents, with a reader
//! that checks every length against what is left, so that no damaged or
//! crafted file can make it read out of bounds, allocate more than the
//! file holds, or panic.

use crate::error::{Error, Result};

/// Appends little-endian values to a byte buffer.
pub(crate) trait Put {
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_u32s(&mut self, v: &[u32]);
    fn put_i64s(&mut self, v: &[i64]);
}

impl Put for Vec<u8> {
    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32s(&mut self, v: &[u32]) {
        self.reserve(v.len() * 4);
        v.iter()
            .for_each(|x| self.extend_from_slice(&x.to_le_bytes()));
    }
    fn put_i64s(&mut self, v: &[i64]) {
        self.reserve(v.len() * 8);
        v.iter()
            .for_each(|x| self.extend_from_slice(&x.to_le_bytes()));
    }
}

/// Reads little-endian values from a byte slice; every failure is a data
/// error naming `context` (the file).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    context: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], context: &'a str) -> Self {
        Self {
            buf,
            pos: 0,
            context,
        }
    }

    /// A data error about this reader's file.
    pub fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::data(self.context, reason)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "truncated: {n} bytes wanted at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of items of `size` bytes each that must fit in what is left.
    pub fn count(&mut self, size: usize) -> Result<usize> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n)
                if n.checked_mul(size.max(1))
                    .is_some_and(|b| b <= self.remaining()) =>
            {
                Ok(n)
            }
            _ => Err(self.error(format!("implausible count {n}"))),
        }
    }

    pub fn u32s(&mut self, n: usize) -> Result<Vec<u32>> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| self.error("overflow"))?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub fn i64s(&mut self, n: usize) -> Result<Vec<i64>> {
        Ok(self.u64s(n)?.into_iter().map(|v| v as i64).collect())
    }

    pub fn u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        let bytes = self.take(n.checked_mul(8).ok_or_else(|| self.error("overflow"))?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    /// Fails unless everything was read.
    pub fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} unexpected bytes at the end", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut b = Vec::new();
        b.put_u32(7);
        b.put_u64(3);
        b.put_i64s(&[-1, 2, 3]);
        let mut r = Reader::new(&b, "f");
        assert_eq!(r.u32().unwrap(), 7);
        let n = r.count(8).unwrap();
        assert_eq!(r.i64s(n).unwrap(), [-1, 2, 3]);
        r.finish().unwrap();
        let mut r = Reader::new(&b[..b.len() - 1], "f");
        r.u32().unwrap();
        assert!(r.count(8).is_err());
        let mut huge = Vec::new();
        huge.put_u64(u64::MAX);
        assert!(Reader::new(&huge, "f").count(16).is_err());
    }
}
