"""whisper_streaming (ufal/whisper_streaming, LocalAgreement-2 over faster-whisper) on a WAV played in
real time, as its own simulation does (whisper_online.py's main loop: wait for --min-chunk-size of
new audio, hand it over, process, print what was committed), with the model on the CPU in int8
(its loader asks for CUDA). Prints one JSON line per commit: {"t": wall seconds since the start,
"start", "end", "text"}.

    python live_peer.py WHISPER_STREAMING_DIR MODEL_DIR AUDIO.wav [--min-chunk-size 1.0] [--vac]

The whisper_streaming source is not part of this repository: benches/live.sh takes its path
(fetched beside the project).
"""
import argparse
import json
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("source")
p.add_argument("model_dir")
p.add_argument("audio")
p.add_argument("--min-chunk-size", type=float, default=1.0)
p.add_argument("--vac", action="store_true")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
sys.path.insert(0, a.source)

import logging  # noqa: E402

logging.disable(logging.CRITICAL)
import whisper_online as wo  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402


class CpuASR(wo.FasterWhisperASR):
    def load_model(self, modelsize=None, cache_dir=None, model_dir=None):
        return WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=a.threads)


SR = 16000
audio = wo.load_audio(a.audio)
duration = len(audio) / SR
asr = CpuASR(modelsize=None, lan="en", cache_dir=None, model_dir=a.model_dir)
log = open("/dev/null", "w")
if a.vac:
    online = wo.VACOnlineASRProcessor(a.min_chunk_size, asr, None, logfile=log, buffer_trimming=("segment", 15))
    step = 0.04
else:
    online = wo.OnlineASRProcessor(asr, None, logfile=log, buffer_trimming=("segment", 15))
    step = a.min_chunk_size
asr.transcribe(audio[:SR])  # warm up, as whisper_online.py does


def emit(o, now):
    if o[0] is not None:
        print(json.dumps({"t": now, "start": o[0], "end": o[1], "text": o[2]}), flush=True)


start = time.time()
beg = end = 0.0
while True:
    now = time.time() - start
    if now < end + step:
        time.sleep(step + end - now)
    end = min(time.time() - start, duration)
    online.insert_audio_chunk(audio[int(beg * SR):int(end * SR)])
    beg = end
    emit(online.process_iter(), time.time() - start)
    if end >= duration:
        break
emit(online.finish(), time.time() - start)
