//! Frames that no later frame is predicted from, told from their headers before any decoding.
//!
//! H.264's and HEVC's B-frames are such frames, and FFmpeg's decoders skip them when asked. AV1
//! has no B-frames: an encoder's layers of frames are frames shown in order, the top layer
//! (half or more of them with SVT-AV1) refreshing none of the eight reference slots; FFmpeg 5.1's
//! libdav1d wrapper skips nothing. Their frame headers say so (`refresh_frame_flags`), so a
//! packet (a temporal unit) whose frames refresh nothing can be left out of a decoding. Parsing
//! follows the AV1 specification (sections 5.3, 5.5 and 5.9), as far as that field; anything
//! unexpected keeps the packet.

use ffmpeg_next as ff;

/// The sequence header's fields that the frame header's layout depends on.
#[derive(Clone, Copy, Default)]
struct Sequence {
    reduced_still_picture_header: bool,
    /// Decoder model timing in frame headers: not parsed (packets are kept).
    decoder_model: bool,
    equal_picture_interval: bool,
    frame_id_length: Option<u32>,
    force_screen_content_tools: u32,
    force_integer_mv: u32,
    order_hint_bits: u32,
}

/// Reads a stream's AV1 frame headers.
pub(super) struct Av1Headers {
    sequence: Option<Sequence>,
}

impl Av1Headers {
    /// For an AV1 stream (`params`: its codec's), from its codec's extra data (an `av1C` record,
    /// the sequence header after its first 4 bytes); `None` for any other codec.
    pub(super) fn new(params: &ff::codec::Parameters) -> Option<Self> {
        if params.id() != ff::codec::Id::AV1 {
            return None;
        }
        // SAFETY: `params` holds the stream's codec parameters, and its extra data, for as long
        // as this reads them.
        let extradata = unsafe {
            let p = &*params.as_ptr();
            match p.extradata.is_null() {
                true => &[][..],
                false => std::slice::from_raw_parts(p.extradata, p.extradata_size.max(0) as usize),
            }
        };
        let mut h = Self { sequence: None };
        if extradata.len() > 4 && extradata[0] & 0x80 != 0 {
            h.unreferenced(&extradata[4..]);
        }
        Some(h)
    }

    /// Whether `data` (a packet: one temporal unit of OBUs) holds frames only, each of which
    /// refreshes no reference slot. A sequence header in it is read (and keeps the packet).
    pub(super) fn unreferenced(&mut self, data: &[u8]) -> bool {
        let mut rest = data;
        let mut frames = 0;
        while !rest.is_empty() {
            let Some((kind, payload, next)) = obu(rest) else { return false };
            rest = next;
            match kind {
                // A sequence header: read it, keep the packet.
                1 => {
                    self.sequence = sequence(payload);
                    return false;
                }
                // A frame header, or a frame (header and tiles).
                3 | 6 => {
                    let Some(seq) = self.sequence else { return false };
                    if refresh_flags(&seq, payload) != Some(0) {
                        return false;
                    }
                    frames += 1;
                }
                // Temporal delimiter, tile group (of the frame before), metadata, padding.
                2 | 4 | 5 | 15 => {}
                _ => return false,
            }
        }
        frames > 0
    }
}

/// The OBU at the start of `data`: its type, its payload and what follows it.
fn obu(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let header = *data.first()?;
    let kind = (header >> 3) & 0x0f;
    let (extension, has_size) = (header & 0x04 != 0, header & 0x02 != 0);
    let mut at = if extension { 2 } else { 1 };
    let size = if has_size {
        let mut size = 0usize;
        for i in 0..8 {
            let b = *data.get(at)?;
            at += 1;
            size |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        size
    } else {
        data.len() - at
    };
    let end = at.checked_add(size).filter(|&e| e <= data.len())?;
    Some((kind, data.get(at..end)?, &data[end..]))
}

/// A most-significant-bit-first reader.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn f(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }

    fn flag(&mut self) -> Option<bool> {
        self.f(1).map(|b| b == 1)
    }

    /// Variable-length unsigned (the specification's `uvlc`), only skipped here.
    fn uvlc(&mut self) -> Option<()> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return None;
            }
        }
        self.f(zeros).map(drop)
    }
}

/// The fields of a sequence header OBU's payload that frame headers need.
fn sequence(payload: &[u8]) -> Option<Sequence> {
    let mut b = Bits { data: payload, at: 0 };
    let mut s = Sequence::default();
    b.f(3)?; // seq_profile
    b.f(1)?; // still_picture
    s.reduced_still_picture_header = b.flag()?;
    if s.reduced_still_picture_header {
        b.f(5)?; // seq_level_idx[0]
    } else {
        let mut buffer_delay_bits = 0;
        if b.flag()? {
            // timing_info
            b.f(32)?;
            b.f(32)?;
            s.equal_picture_interval = b.flag()?;
            if s.equal_picture_interval {
                b.uvlc()?;
            }
            s.decoder_model = b.flag()?;
            if s.decoder_model {
                buffer_delay_bits = b.f(5)? + 1;
                b.f(32)?;
                b.f(5)?;
                b.f(5)?;
            }
        }
        let initial_display_delay = b.flag()?;
        for _ in 0..=b.f(5)? {
            b.f(12)?; // operating_point_idc
            if b.f(5)? > 7 {
                b.f(1)?; // seq_tier
            }
            if s.decoder_model && b.flag()? {
                b.f(buffer_delay_bits)?;
                b.f(buffer_delay_bits)?;
                b.f(1)?;
            }
            if initial_display_delay && b.flag()? {
                b.f(4)?;
            }
        }
    }
    let (width_bits, height_bits) = (b.f(4)? + 1, b.f(4)? + 1);
    b.f(width_bits)?;
    b.f(height_bits)?;
    if !s.reduced_still_picture_header && b.flag()? {
        let delta = b.f(4)? + 2;
        let additional = b.f(3)? + 1;
        s.frame_id_length = Some(delta + additional);
    }
    b.f(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    (s.force_screen_content_tools, s.force_integer_mv) = (2, 2);
    if !s.reduced_still_picture_header {
        b.f(4)?; // interintra and masked compound, warped motion, dual filter
        let order_hint = b.flag()?;
        if order_hint {
            b.f(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        s.force_screen_content_tools = if b.flag()? { 2 } else { b.f(1)? };
        s.force_integer_mv = if s.force_screen_content_tools > 0 {
            if b.flag()? {
                2
            } else {
                b.f(1)?
            }
        } else {
            2
        };
        if order_hint {
            s.order_hint_bits = b.f(3)? + 1;
        }
    }
    Some(s)
}

/// The `refresh_frame_flags` of a frame header (`payload` starts with it); `None` for a frame
/// that shows an earlier one, or one not parsed here.
fn refresh_flags(s: &Sequence, payload: &[u8]) -> Option<u32> {
    const KEY: u32 = 0;
    const INTRA_ONLY: u32 = 2;
    const SWITCH: u32 = 3;
    if s.reduced_still_picture_header || s.decoder_model {
        return None;
    }
    let mut b = Bits { data: payload, at: 0 };
    if b.flag()? {
        return None; // show_existing_frame
    }
    let frame_type = b.f(2)?;
    let show_frame = b.flag()?;
    if !show_frame {
        b.f(1)?; // showable_frame
    }
    let error_resilient = if frame_type == SWITCH || (frame_type == KEY && show_frame) { true } else { b.flag()? };
    b.f(1)?; // disable_cdf_update
    let screen_content = if s.force_screen_content_tools == 2 { b.f(1)? } else { s.force_screen_content_tools };
    if screen_content > 0 && s.force_integer_mv == 2 {
        b.f(1)?; // force_integer_mv
    }
    if let Some(n) = s.frame_id_length {
        b.f(n)?; // current_frame_id
    }
    if frame_type != SWITCH {
        b.f(1)?; // frame_size_override_flag
    }
    b.f(s.order_hint_bits)?;
    let intra = frame_type == KEY || frame_type == INTRA_ONLY;
    if !(intra || error_resilient) {
        b.f(3)?; // primary_ref_frame
    }
    if frame_type == SWITCH || (frame_type == KEY && show_frame) {
        return Some(0xff);
    }
    b.f(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OBU: its type, payload and a size field.
    fn obu_bytes(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(kind << 3) | 0x02, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    /// Bits, most significant first, packed into bytes (zero-padded).
    fn pack(bits: &str) -> Vec<u8> {
        let bits: Vec<u8> = bits.bytes().filter(|c| *c == b'0' || *c == b'1').map(|c| c - b'0').collect();
        bits.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |a, (i, &b)| a | (b << (7 - i)))).collect()
    }

    /// A sequence header: profile 0, no timing info, one operating point at level 0, 1920x1080
    /// (11 and 11 bits), no frame ids, order hints of 7 bits, screen content tools chosen per frame.
    fn sequence_header() -> Vec<u8> {
        pack(concat!(
            "000 0 0",                           // profile, still_picture, reduced_still_picture_header
            "0 0",                               // timing_info_present, initial_display_delay_present
            "00000 000000000000 00000",          // one operating point, idc 0, level 0
            "1010 1010 11101111111 10000110111", // width/height bits - 1, max sizes - 1
            "0",                                 // frame_id_numbers_present
            "000",                               // 128x128, filter intra, intra edge
            "0000",                              // compound, warped, dual filter
            "1 00",                              // enable_order_hint, jnt_comp, ref_frame_mvs
            "1",                                 // seq_choose_screen_content_tools (force = SELECT)
            "1",                                 // seq_choose_integer_mv
            "110",                               // order_hint_bits - 1
        ))
    }

    /// An inter frame header up to refresh_frame_flags.
    fn inter_frame(show: bool, refresh: u8) -> Vec<u8> {
        let bits =
            format!("0 01 {} {} 0 0 0 0 0000101 000 {:08b}", u8::from(show), if show { "" } else { "1" }, refresh);
        pack(&bits)
    }

    #[test]
    fn a_temporal_unit_of_frames_refreshing_nothing_is_unreferenced() {
        let mut h = Av1Headers { sequence: None };
        let mut with_sequence = obu_bytes(2, &[]);
        with_sequence.extend(obu_bytes(1, &sequence_header()));
        with_sequence.extend(obu_bytes(6, &inter_frame(true, 0)));
        assert!(!h.unreferenced(&with_sequence), "a sequence header keeps its packet");
        let mut top_layer = obu_bytes(2, &[]);
        top_layer.extend(obu_bytes(6, &inter_frame(true, 0)));
        assert!(h.unreferenced(&top_layer));
        let mut reference = obu_bytes(2, &[]);
        reference.extend(obu_bytes(6, &inter_frame(false, 0x01)));
        reference.extend(obu_bytes(6, &inter_frame(true, 0)));
        assert!(!h.unreferenced(&reference), "a hidden frame refreshing slot 0");
        let show_existing = [obu_bytes(2, &[]), obu_bytes(3, &[0x80])].concat();
        assert!(!h.unreferenced(&show_existing));
        assert!(!h.unreferenced(&[0x32, 0x09, 0x00]), "an OBU running past the packet");
    }
}
