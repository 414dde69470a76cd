//! A minimal independent inflater for checking our output: decodes a raw
//! deflate stream and reports the longest back-reference distance.

use super::HELLO;
use crate::deflate::codec::TAIL;

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut value = 0;
        for i in 0..n {
            value |= self.bit()? << i;
        }
        Some(value)
    }
}

/// A canonical Huffman code: how many codes of each length, and the
/// symbols in code order.
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut counts = [0u16; 16];
        for &l in lengths {
            counts[usize::from(l)] += 1;
        }
        counts[0] = 0;
        let mut symbols = Vec::new();
        for len in 1..16u8 {
            for (symbol, &l) in lengths.iter().enumerate() {
                if l == len {
                    symbols.push(symbol as u16);
                }
            }
        }
        Huffman { counts, symbols }
    }

    fn decode(&self, bits: &mut Bits) -> Option<u16> {
        // Walk the code one bit at a time; codes of each length are
        // consecutive integers starting at `first`.
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.bit()? as i32;
            let count = i32::from(self.counts[len]);
            if code - first < count {
                return self.symbols.get((index + code - first) as usize).copied();
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
const ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Decodes blocks until the input runs out at a block boundary;
/// returns the output and the longest distance used.
pub fn inflate(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut bits = Bits { data, pos: 0 };
    let mut out = Vec::new();
    let mut max_dist = 0;
    while bits.pos / 8 < data.len() {
        let _final = bits.bit()?;
        match bits.bits(2)? {
            0 => {
                bits.pos = bits.pos.div_ceil(8) * 8;
                let len = bits.bits(16)?;
                let nlen = bits.bits(16)?;
                if len != !nlen & 0xffff {
                    return None;
                }
                let start = bits.pos / 8;
                out.extend_from_slice(data.get(start..start + len as usize)?);
                bits.pos += 8 * len as usize;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Huffman::new(&l), Huffman::new(&[5; 30]))
                } else {
                    let hlit = bits.bits(5)? as usize + 257;
                    let hdist = bits.bits(5)? as usize + 1;
                    let hclen = bits.bits(4)? as usize + 4;
                    let mut cl = [0u8; 19];
                    for &i in &ORDER[..hclen] {
                        cl[i] = bits.bits(3)? as u8;
                    }
                    let cl = Huffman::new(&cl);
                    let mut lengths = Vec::new();
                    while lengths.len() < hlit + hdist {
                        match cl.decode(&mut bits)? {
                            s @ 0..=15 => lengths.push(s as u8),
                            16 => {
                                let prev = *lengths.last()?;
                                let n = 3 + bits.bits(2)?;
                                lengths.extend(std::iter::repeat_n(prev, n as usize));
                            }
                            17 => {
                                let n = 3 + bits.bits(3)?;
                                lengths.extend(std::iter::repeat_n(0, n as usize));
                            }
                            _ => {
                                let n = 11 + bits.bits(7)?;
                                lengths.extend(std::iter::repeat_n(0, n as usize));
                            }
                        }
                    }
                    (
                        Huffman::new(&lengths[..hlit]),
                        Huffman::new(&lengths[hlit..]),
                    )
                };
                loop {
                    let symbol = lit.decode(&mut bits)?;
                    match symbol {
                        0..=255 => out.push(symbol as u8),
                        256 => break,
                        _ => {
                            let i = usize::from(symbol - 257);
                            let len = usize::from(*LEN_BASE.get(i)?)
                                + bits.bits(u32::from(LEN_EXTRA[i]))? as usize;
                            let d = usize::from(dist.decode(&mut bits)?);
                            let distance = usize::from(*DIST_BASE.get(d)?)
                                + bits.bits(u32::from(DIST_EXTRA[d]))? as usize;
                            if distance > out.len() {
                                return None;
                            }
                            max_dist = max_dist.max(distance);
                            for _ in 0..len {
                                out.push(out[out.len() - distance]);
                            }
                        }
                    }
                }
            }
            _ => return None,
        }
    }
    Some((out, max_dist))
}

#[test]
fn reference_inflater_reads_the_rfc_examples() {
    let mut stream = HELLO.to_vec();
    stream.extend_from_slice(&TAIL);
    stream.extend_from_slice(&[0xf2, 0x00, 0x11, 0x00, 0x00]);
    stream.extend_from_slice(&TAIL);
    assert_eq!(inflate(&stream), Some((b"HelloHello".to_vec(), 5)));
}
