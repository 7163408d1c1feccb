//! Just enough of the ONNX format to take the weights out of a model file: its float
//! initializers by name, and its nodes (op type, name, inputs), so that weights an exporter left
//! unnamed (`onnx::MatMul_1966`) can be named after the node that reads them.
//!
//! An ONNX file is a protobuf `ModelProto`
//! (https://github.com/onnx/onnx/blob/v1.16.0/onnx/onnx.proto): field 7 is the `GraphProto`, whose
//! field 1 holds `NodeProto`s (1 input, 2 output, 3 name, 4 op_type) and field 5 `TensorProto`
//! initializers (1 dims, 2 data_type, 4 float_data, 8 name, 9 raw_data). Only what that needs of
//! the protobuf wire format is read here: varints, length-delimited and fixed-width fields.

use std::collections::HashMap;

/// `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: u64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnnxNode {
    pub name: String,
    pub op: String,
    pub inputs: Vec<String>,
}

#[derive(Debug, Default)]
pub struct OnnxGraph {
    /// Float initializers; other types (shape constants) are left out.
    pub tensors: HashMap<String, OnnxTensor>,
    pub nodes: Vec<OnnxNode>,
}

impl OnnxGraph {
    /// The initializer a node named `node` (e.g. `/backbone/encoder/layer.0/mlp/fc1/MatMul`)
    /// reads, i.e. its first input that is an initializer.
    pub fn weight_of(&self, node: &str) -> Option<&OnnxTensor> {
        let n = self.nodes.iter().find(|n| n.name == node)?;
        n.inputs.iter().find_map(|i| self.tensors.get(i))
    }
}

/// One protobuf field: number and value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let mut field = || -> Result<(u64, Value<'a>), String> {
            let key = varint(self.buf, &mut self.at)?;
            let take = |at: &mut usize, n: usize| -> Result<&'a [u8], String> {
                let end = at.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or("truncated field")?;
                let s = &self.buf[*at..end];
                *at = end;
                Ok(s)
            };
            let value = match key & 7 {
                0 => Value::Varint(varint(self.buf, &mut self.at)?),
                1 => {
                    take(&mut self.at, 8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = varint(self.buf, &mut self.at)? as usize;
                    Value::Bytes(take(&mut self.at, n)?)
                }
                5 => {
                    let b = take(&mut self.at, 4)?;
                    Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                w => return Err(format!("unsupported protobuf wire type {w}")),
            };
            Ok((key >> 3, value))
        };
        let r = field();
        if r.is_err() {
            self.at = self.buf.len();
        }
        Some(r)
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, at: 0 }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
}

/// Reads the graph of an ONNX model file's bytes.
pub fn read(buf: &[u8]) -> Result<OnnxGraph, String> {
    let mut graph = OnnxGraph::default();
    let mut found = false;
    for f in fields(buf) {
        if let (7, Value::Bytes(g)) = f? {
            found = true;
            for f in fields(g) {
                match f? {
                    (1, Value::Bytes(n)) => graph.nodes.push(node(n)?),
                    (5, Value::Bytes(t)) => {
                        if let Some((name, t)) = tensor(t)? {
                            graph.tensors.insert(name, t);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if !found {
        return Err("no graph in the file (not an ONNX model)".into());
    }
    Ok(graph)
}

fn node(buf: &[u8]) -> Result<OnnxNode, String> {
    let mut n = OnnxNode::default();
    for f in fields(buf) {
        match f? {
            (1, Value::Bytes(b)) => n.inputs.push(text(b)?),
            (3, Value::Bytes(b)) => n.name = text(b)?,
            (4, Value::Bytes(b)) => n.op = text(b)?,
            _ => {}
        }
    }
    Ok(n)
}

/// A float initializer, or `None` for other element types.
fn tensor(buf: &[u8]) -> Result<Option<(String, OnnxTensor)>, String> {
    let (mut name, mut dims, mut dtype, mut raw, mut floats) = (String::new(), Vec::new(), 0, None, Vec::new());
    for f in fields(buf) {
        match f? {
            (1, Value::Varint(d)) => dims.push(d as usize),
            (1, Value::Bytes(packed)) => {
                let mut at = 0;
                while at < packed.len() {
                    dims.push(varint(packed, &mut at)? as usize);
                }
            }
            (2, Value::Varint(t)) => dtype = t,
            (4, Value::Fixed32(x)) => floats.push(f32::from_bits(x)),
            (4, Value::Bytes(packed)) => {
                floats.extend(packed.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            (8, Value::Bytes(b)) => name = text(b)?,
            (9, Value::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    if dtype != ONNX_FLOAT {
        return Ok(None);
    }
    let data = match raw {
        Some(b) => b.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        None => floats,
    };
    // The dimensions are the file's word: a product past usize is a shape no data matches.
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count != Some(data.len()) {
        return Err(format!("{name}: {} values for shape {dims:?}", data.len()));
    }
    Ok(Some((name, OnnxTensor { dims, data })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        put_varint(out, field << 3 | 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// Found by the `onnx` fuzz target: dimensions whose product overflows were multiplied
    /// unchecked (a panic with overflow checks; without, 2 x (2^63 + 1) wrapped to 2 and two
    /// values passed for that shape); such a tensor is refused.
    #[test]
    fn fuzz_onnx_dimensions_that_overflow_are_refused() {
        let mut t = Vec::new();
        for d in [2, (1u64 << 63) + 1] {
            put_varint(&mut t, 1 << 3);
            put_varint(&mut t, d);
        }
        put_varint(&mut t, 2 << 3);
        put_varint(&mut t, 1);
        put_bytes(&mut t, 8, b"w");
        put_bytes(&mut t, 9, &[0; 8]);
        let mut g = Vec::new();
        put_bytes(&mut g, 5, &t);
        let mut m = Vec::new();
        put_bytes(&mut m, 7, &g);
        assert!(read(&m).unwrap_err().contains("values for shape"));
    }

    #[test]
    fn reads_named_raw_initializers_and_the_nodes_that_use_them() {
        let mut t = Vec::new();
        put_bytes(&mut t, 1, &[2, 3]); // packed dims
        put_varint(&mut t, 2 << 3);
        put_varint(&mut t, ONNX_FLOAT);
        put_bytes(&mut t, 8, b"onnx::MatMul_7");
        let raw: Vec<u8> = (0..6).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        put_bytes(&mut t, 9, &raw);
        let mut n = Vec::new();
        put_bytes(&mut n, 1, b"x");
        put_bytes(&mut n, 1, b"onnx::MatMul_7");
        put_bytes(&mut n, 3, b"/fc1/MatMul");
        put_bytes(&mut n, 4, b"MatMul");
        let mut g = Vec::new();
        put_bytes(&mut g, 1, &n);
        put_bytes(&mut g, 5, &t);
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3); // ir_version
        put_varint(&mut m, 8);
        put_bytes(&mut m, 7, &g);

        let graph = read(&m).unwrap();
        let w = graph.weight_of("/fc1/MatMul").unwrap();
        assert_eq!(w.dims, vec![2, 3]);
        assert_eq!(w.data, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(graph.nodes[0].op, "MatMul");
        assert!(read(&m[..m.len() - 3]).is_err(), "a truncated file is an error");
        assert!(read(b"\x08\x01").is_err(), "no graph");
    }
}
