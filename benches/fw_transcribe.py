"""faster-whisper as the peer of the file and archive benchmarks: the model loaded once, then each
medium transcribed in turn (int8, as many CPU threads as cores, its defaults otherwise).

    fw_transcribe.py MODEL_DIR BEAM BATCH HYP MEDIA            # one medium: its text to HYP
    fw_transcribe.py MODEL_DIR BEAM BATCH DIR MEDIA...         # each to DIR/<name>.srt (plain text)
    fw_transcribe.py MODEL_DIR BEAM BATCH DIR @LIST            # the media listed in LIST, one a line

With BATCH above 1, its BatchedInferencePipeline. A medium it cannot read is reported on stderr
and passed over, as a batch tool must (faster-whisper itself stops at the first).
"""
import os
import sys

from faster_whisper import BatchedInferencePipeline, WhisperModel

model_dir, beam, batch, hyp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
media = sys.argv[5:]
if len(media) == 1 and media[0].startswith("@"):
    media = [line.strip() for line in open(media[0][1:]) if line.strip()]
    single = False
else:
    single = len(media) == 1
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=os.cpu_count())
pipeline = BatchedInferencePipeline(model) if batch > 1 else None
failed = 0
for m in media:
    try:
        if pipeline:
            segments, _ = pipeline.transcribe(m, beam_size=beam, language="en", batch_size=batch)
        else:
            segments, _ = model.transcribe(m, beam_size=beam, language="en")
        text = " ".join(s.text.strip() for s in segments)
    except Exception as e:  # noqa: BLE001 - any failure is that file's
        failed += 1
        print(f"failed: {m}: {e}", file=sys.stderr)
        continue
    out = hyp if single else os.path.join(hyp, os.path.splitext(os.path.basename(m))[0] + ".srt")
    with open(out, "w") as f:
        f.write(text)
print(f"faster-whisper: {len(media) - failed} done, {failed} failed", file=sys.stderr)
