//! Frame buffers of their own for the decoders of large pictures.
//!
//! A decoder of 4K pictures allocates some 12 MB a frame from its own pool and frees them all
//! when it is closed (decoders of pictures over 1080p are closed after each keyframe or GOP:
//! kept, they held 155 MB). Freed into the heap among the model's longer-lived buffers, which
//! [`crate::tune_allocator`] keeps there for speed, they left holes: an hour of phone-like 4K
//! went from 304 MB at its start to 418 MB within ten minutes. Here such frames come from
//! anonymous mappings of their own, outside the heap, kept for the next decoder's frames of the
//! same size ([`MAX_FREE`] and [`MAX_FREE_BYTES`] at most) and handed back to the OS beyond that.

use std::sync::Mutex;

use ffmpeg_next::ffi;

/// Free blocks kept for the next frames, and their bytes (eight 4K frames of 12 MB; two 8K ones):
/// beyond these the oldest free blocks are unmapped.
const MAX_FREE: usize = 8;
const MAX_FREE_BYTES: usize = 128 << 20;
/// Planes start on this boundary (FFmpeg's widest vectors), each followed by this much more
/// than its lines (FFmpeg's own pools add 16 bytes and the alignment).
const ALIGN: usize = 64;
const PAD: usize = 16 + ALIGN;
/// A block's length is written in its first bytes; the frame's data follows.
const HEADER: usize = ALIGN;

/// A mapping: its address and length.
struct Block(*mut u8, usize);

// SAFETY: a block is plain memory owned by whoever holds it (the free list, or one frame).
unsafe impl Send for Block {}

static FREE: Mutex<Vec<Block>> = Mutex::new(Vec::new());
/// Blocks handed to frames so far (for the tests: that a decoder used the pool).
#[cfg(test)]
static TAKEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Makes `ctx`'s frames come from the pool; set before the decoder opens, after its threads
/// are. Decoders that cannot take buffers from outside (no `AV_CODEC_CAP_DR1`), hardware frames
/// and palettes keep FFmpeg's own.
///
/// # Safety
/// `ctx` is a decoder's context, not yet opened.
pub(crate) unsafe fn use_for(ctx: *mut ffi::AVCodecContext) {
    (*ctx).get_buffer2 = Some(get_buffer);
    // The pool may be called from FFmpeg's frame threads (FFmpeg 5's flag for it).
    (*ctx).thread_safe_callbacks = 1;
}

/// The frame's planes, as FFmpeg's own `get_buffer2` lays them out: their line sizes and sizes.
struct Layout {
    lines: [i32; 4],
    sizes: [usize; 4],
}

impl Layout {
    /// The layout of `frame` for decoder `s`, or `None` where FFmpeg's own buffers are used.
    ///
    /// # Safety
    /// `s` and `frame` are the decoder's and the frame `get_buffer2` is called for.
    unsafe fn of(s: *mut ffi::AVCodecContext, frame: *const ffi::AVFrame) -> Option<Layout> {
        let codec = (*s).codec;
        if (*s).codec_type != ffi::AVMediaType::AVMEDIA_TYPE_VIDEO
            || codec.is_null()
            || (*codec).capabilities as u32 & ffi::AV_CODEC_CAP_DR1 == 0
            || (*frame).format < 0
        {
            return None;
        }
        // SAFETY: a decoder's frames have a pixel format of the enum's (checked not to be none).
        let format: ffi::AVPixelFormat = std::mem::transmute((*frame).format);
        let desc = ffi::av_pix_fmt_desc_get(format);
        let odd = (ffi::AV_PIX_FMT_FLAG_PAL | ffi::AV_PIX_FMT_FLAG_HWACCEL) as u64;
        if desc.is_null() || (*desc).flags & odd != 0 {
            return None;
        }
        let (mut w, mut h) = ((*frame).width, (*frame).height);
        let mut align = [0i32; ffi::AV_NUM_DATA_POINTERS as usize];
        ffi::avcodec_align_dimensions2(s, &mut w, &mut h, align.as_mut_ptr());
        let mut lines = [0i32; 4];
        // Wider until every plane's lines are aligned (FFmpeg's own loop).
        loop {
            if w <= 0 || ffi::av_image_fill_linesizes(lines.as_mut_ptr(), format, w) < 0 {
                return None;
            }
            w += w & !(w - 1);
            if (0..4).all(|i| align[i] <= 0 || lines[i] % align[i] == 0) {
                break;
            }
        }
        let strides = lines.map(|l| l as isize);
        let mut sizes = [0usize; 4];
        if ffi::av_image_fill_plane_sizes(sizes.as_mut_ptr(), format, h, strides.as_ptr()) < 0 {
            return None;
        }
        Some(Layout { lines, sizes })
    }

    /// Bytes from the start of the data to each plane, and in all.
    fn offsets(&self) -> ([usize; 4], usize) {
        let mut offsets = [0; 4];
        let mut at = 0;
        for (o, &size) in offsets.iter_mut().zip(&self.sizes) {
            *o = at;
            if size > 0 {
                at += (size + PAD).next_multiple_of(ALIGN);
            }
        }
        (offsets, at)
    }
}

/// The decoder's `get_buffer2`: `frame`'s planes in one block of the pool, one reference to it.
///
/// # Safety
/// Called by FFmpeg, for decoder `s` and its frame `frame` (its size and format set).
unsafe extern "C" fn get_buffer(s: *mut ffi::AVCodecContext, frame: *mut ffi::AVFrame, flags: i32) -> i32 {
    let Some(layout) = Layout::of(s, frame) else { return ffi::avcodec_default_get_buffer2(s, frame, flags) };
    let (offsets, size) = layout.offsets();
    let Some(data) = take(size) else { return ffi::AVERROR(libc::ENOMEM) };
    let buf = ffi::av_buffer_create(data, size, Some(give_back), std::ptr::null_mut(), 0);
    if buf.is_null() {
        give_back(std::ptr::null_mut(), data);
        return ffi::AVERROR(libc::ENOMEM);
    }
    (*frame).buf[0] = buf;
    for (i, (&offset, &plane)) in offsets.iter().zip(&layout.sizes).enumerate() {
        let used = plane > 0;
        (*frame).data[i] = if used { data.add(offset) } else { std::ptr::null_mut() };
        (*frame).linesize[i] = if used { layout.lines[i] } else { 0 };
    }
    (*frame).extended_data = (*frame).data.as_mut_ptr();
    0
}

/// A block of `size` bytes of data: a free one of that size, or a new mapping.
fn take(size: usize) -> Option<*mut u8> {
    let len = HEADER + size;
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    let block = match free.iter().position(|b| b.1 == len) {
        Some(i) => free.remove(i),
        None => {
            drop(free);
            // SAFETY: a new private anonymous mapping; nothing else refers to it.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return None;
            }
            Block(p.cast(), len)
        }
    };
    #[cfg(test)]
    TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: the block is `len` long, HEADER of it for its length, and page aligned.
    unsafe {
        block.0.cast::<usize>().write(block.1);
        Some(block.0.add(HEADER))
    }
}

/// Takes a frame's block back (FFmpeg calls it when the frame's last reference goes).
///
/// # Safety
/// `data` came from [`take`] and is given back once.
unsafe extern "C" fn give_back(_opaque: *mut libc::c_void, data: *mut u8) {
    let start = data.sub(HEADER);
    let block = Block(start, start.cast::<usize>().read());
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    free.push(block);
    let surplus = surplus(&mut free);
    drop(free);
    for Block(p, len) in surplus {
        libc::munmap(p.cast(), len);
    }
}

/// The free blocks beyond [`MAX_FREE`] and [`MAX_FREE_BYTES`], taken out of `free`: the oldest
/// first (a size no longer decoded among them); the newest is always kept.
fn surplus(free: &mut Vec<Block>) -> Vec<Block> {
    let mut bytes: usize = free.iter().map(|b| b.1).sum();
    let mut out = Vec::new();
    while free.len() > 1 && (free.len() > MAX_FREE || bytes > MAX_FREE_BYTES) {
        let b = free.remove(0);
        bytes -= b.1;
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_start_aligned_each_with_room_after_its_lines() {
        // 4K 4:2:0, lines of 3840 and 1920 bytes, 2160 and 1080 rows.
        let layout = Layout { lines: [3840, 1920, 1920, 0], sizes: [3840 * 2160, 1920 * 1080, 1920 * 1080, 0] };
        let (offsets, size) = layout.offsets();
        assert!(offsets.iter().all(|o| o % ALIGN == 0));
        assert!(offsets[1] >= layout.sizes[0] + 16 && offsets[2] >= offsets[1] + layout.sizes[1] + 16);
        assert!(size >= offsets[2] + layout.sizes[2] + 16 && size % ALIGN == 0);
    }

    /// The visible bytes of every frame of the video in `path`, decoded with the pool or not.
    fn pictures(path: &std::path::Path, pooled: bool) -> Vec<Vec<u8>> {
        use ffmpeg_next as ff;
        let mut input = ff::format::input(&path).expect("the clip opens");
        let stream = input.streams().best(ff::media::Type::Video).expect("a video stream");
        let index = stream.index();
        let mut c = ff::codec::context::Context::from_parameters(stream.parameters()).unwrap();
        if pooled {
            // SAFETY: the context is a decoder's, not opened yet.
            unsafe { use_for(c.as_mut_ptr()) };
        }
        let mut d = c.decoder().video().unwrap();
        let mut out = Vec::new();
        let mut frame = ff::frame::Video::empty();
        let mut take = |d: &mut ff::decoder::Video, out: &mut Vec<Vec<u8>>| {
            while d.receive_frame(&mut frame).is_ok() {
                let bytes = if frame.format() == ff::format::Pixel::YUV420P10LE { 2 } else { 1 };
                let mut picture = Vec::new();
                for i in 0..frame.planes() {
                    let (w, stride) = (frame.plane_width(i) as usize * bytes, frame.stride(i));
                    for row in frame.data(i).chunks(stride).take(frame.plane_height(i) as usize) {
                        picture.extend_from_slice(&row[..w]);
                    }
                }
                out.push(picture);
            }
        };
        for (s, packet) in input.packets() {
            if s.index() == index {
                d.send_packet(&packet).unwrap();
                take(&mut d, &mut out);
            }
        }
        d.send_eof().unwrap();
        take(&mut d, &mut out);
        out
    }

    #[test]
    fn pooled_frames_are_the_pictures_ffmpeg_decodes_into_its_own() {
        let dir = std::env::temp_dir().join(format!("subtitle-frame-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // H.264 with B-frames and HEVC in 10 bits, at a size whose lines need widening.
        for (name, codec) in [("h264.mp4", "libx264"), ("hevc10.mp4", "libx265")] {
            let clip = dir.join(name);
            let mut args = vec!["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=318x178:r=25:d=1", "-c:v", codec];
            if codec == "libx265" {
                args.extend(["-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"]);
            }
            let ok = std::process::Command::new("ffmpeg").args(&args).arg(&clip).status().expect("ffmpeg runs");
            assert!(ok.success(), "ffmpeg made no {name}");
            use std::sync::atomic::Ordering;
            let taken = TAKEN.load(Ordering::Relaxed);
            let pooled = pictures(&clip, true);
            assert!(TAKEN.load(Ordering::Relaxed) > taken, "{name}: no frame came from the pool");
            let own = pictures(&clip, false);
            assert_eq!(pooled.len(), 25, "{name}");
            assert!(pooled == own, "{name}: the pictures differ");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn free_blocks_beyond_the_count_or_the_bytes_go_oldest_first() {
        let blocks = |lens: &[usize]| lens.iter().map(|&l| Block(std::ptr::null_mut(), l)).collect::<Vec<_>>();
        let lens = |v: &[Block]| v.iter().map(|b| b.1).collect::<Vec<_>>();
        let mb = 1 << 20;
        // Nine 4K frames: the oldest goes.
        let mut free = blocks(&[13 * mb; 9]);
        assert_eq!(surplus(&mut free).len(), 1);
        assert_eq!(free.len(), MAX_FREE);
        // A huge frame's block after two 4K ones: the oldest goes, as far as the bytes ask;
        // a block over the bytes alone stays.
        let mut free = blocks(&[13 * mb, 13 * mb, 110 * mb]);
        assert_eq!(lens(&surplus(&mut free)), [13 * mb]);
        assert_eq!(lens(&free), [13 * mb, 110 * mb]);
        let mut free = blocks(&[100 * mb, 200 * mb]);
        assert_eq!(lens(&surplus(&mut free)), [100 * mb]);
        assert_eq!(lens(&free), [200 * mb]);
    }

    #[test]
    fn a_block_given_back_is_taken_again_for_the_same_size() {
        let size = 12_345 * ALIGN;
        let a = take(size).expect("mapped");
        // SAFETY: the block is writable for `size` bytes; it is given back once.
        unsafe {
            a.write_bytes(7, size);
            give_back(std::ptr::null_mut(), a);
        }
        let b = take(size).expect("mapped");
        assert_eq!(a, b);
        // SAFETY: as above.
        unsafe { give_back(std::ptr::null_mut(), b) };
    }
}
