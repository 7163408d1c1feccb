#!/usr/bin/env python3
"""Slide-style test videos: each slide shows a title and rare names and terms (ffmpeg drawtext),
espeak-ng says sentences that use them, pink noise is mixed in at a chosen SNR, and the reference
subtitles are written beside the video.

    samples/slides.py OUT_DIR --count N [--seed S] [--snr DB] [--first K] [--height 1080]

For video K (K = first .. first + count - 1) it writes OUT_DIR/slides-K.mp4, slides-K.srt (one
cue a sentence, at the speech's known times), slides-K.txt (the spoken text) and slides-K.terms
(the names and terms shown, one a line). The same seed and K always give the same video, so a
held-out set is just another range of K. Idempotent: videos already made are kept.
"""
import argparse
import array
import math
import os
import random
import subprocess
import tempfile
import wave

NAMES = [
    "Przemyslaw Kowalczyk", "Aoife Brennan", "Dmitri Zhelezniak", "Oluwaseun Adeyemi",
    "Xochitl Quetzalli", "Siobhan Fitzgibbon", "Tadeusz Wrobel", "Eilidh MacGillivray",
    "Raghunathan Srinivasan", "Ksenia Wojcik", "Yevgenia Tsvetkova", "Joaquim Figueiredo",
    "Ngozi Chukwuemeka", "Hrafnhildur Jonsdottir", "Lieselotte Grunewald", "Anselm Kirchhoff",
    "Guadalupe Echeverria", "Tomasz Szczepanik", "Ailbhe Ni Riordain", "Bartholomew Featherstonehaugh",
    "Zbigniew Brzezinski", "Thandiwe Mkhabela", "Caoimhe Gallagher", "Ignatius Papadopoulos",
    "Wojciech Grzybowski", "Saoirse Donoghue", "Vuyisile Ndlovu", "Ekaterina Vasnetsova",
    "Leopoldo Zambrano", "Mairead Ui Cheallaigh",
]
TERMS = [
    "phosphofructokinase", "chemiluminescence", "tachyarrhythmia", "glioblastoma",
    "bremsstrahlung", "eigendecomposition", "heteroskedasticity", "Kolmogorov complexity",
    "Voronoi tessellation", "Levenshtein distance", "synaptogenesis", "thermohaline circulation",
    "zooxanthellae", "photolithography", "Chebyshev polynomials", "ribozymes",
    "Przewalski horses", "Ouagadougou", "Kyrgyzstan", "myxomatosis", "paleoclimatology",
    "oligodendrocytes", "Schwarzschild radius", "Runge Kutta methods", "Hausdorff dimension",
    "cyanobacteria", "metallocene catalysts", "Tocharian languages", "Djibouti",
    "Nyquist frequency", "Ehrenfest theorem", "pyroclastic flows", "Kleinian groups",
    "apoptosis", "Gaussian copulas", "Bose Einstein condensates", "Wolbachia",
    "Mycobacterium", "Tlingit carvings", "Chukchi Peninsula",
]
# Names and terms that the default videos never use (--unseen): a held-out set for an adapter
# trained on the default videos, which has seen every name and term above.
UNSEEN_NAMES = [
    "Radoslaw Chmielewski", "Fionnuala Ni Bhriain", "Kwabena Owusu-Ansah", "Ingibjorg Sigurdardottir",
    "Evangelos Kontogiannis", "Marguerite Duplessis", "Sheherazade Karimova", "Thorvaldur Gislason",
    "Nkechinyere Okonkwo", "Wladyslaw Szymborski", "Ruairi O Dubhghaill", "Anastasiya Khrushcheva",
    "Bongani Hlongwane", "Padraigin Ni Mhurchu", "Eleftheria Papakonstantinou",
]
UNSEEN_TERMS = [
    "phenylketonuria", "magnetohydrodynamics", "spectrophotometry", "cholecystectomy",
    "Grothendieck topologies", "Burkina Faso", "Tegucigalpa", "ornithopters", "Dzongkha",
    "Mandelbrot sets", "bioluminescence", "Laplacian eigenmaps", "Archaeopteryx",
    "Fibonacci heaps", "Kamchatka", "stromatolites", "Tikhonov regularisation",
    "quasicrystals", "Brouwer fixed points", "Azerbaijan",
]
NAME_LINES = [
    "Our next speaker is {n}.",
    "This work was led by {n} and her team.",
    "Please welcome {n} to the stage.",
    "The slides were prepared by {n}.",
    "We thank {n} for the data.",
]
TERM_LINES = [
    "Today we talk about {t}.",
    "The second part covers {t} in more detail.",
    "Many students find {t} difficult at first.",
    "Here you can see a short summary of {t}.",
    "Recent results on {t} surprised everyone.",
]
TITLES = ["Introduction", "Background", "Methods", "Results", "Discussion", "Questions",
          "Overview", "Case study", "Open problems", "Summary"]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
RATE = 16000


def ff(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def read_pcm(path):
    with wave.open(path) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == RATE
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
        return a


def write_pcm(path, samples):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())


def rms(a):
    return math.sqrt(sum(x * x for x in a) / max(len(a), 1))


def srt_time(t):
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02}:{ms // 60000 % 60:02}:{ms // 1000 % 60:02},{ms % 1000:03}"


def escape(text):
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\u2019").replace("%", "\\%")


def plan(seed, k, unseen=False):
    """Three slides, each with one name and one term, and the sentences that say them."""
    rng = random.Random(f"{seed}-{k}")
    names = rng.sample(UNSEEN_NAMES if unseen else NAMES, 3)
    terms = rng.sample(UNSEEN_TERMS if unseen else TERMS, 3)
    titles = rng.sample(TITLES, 3)
    name_lines, term_lines = rng.sample(NAME_LINES, 3), rng.sample(TERM_LINES, 3)
    slides = []
    for i in range(3):
        lines = [name_lines[i].format(n=names[i]), term_lines[i].format(t=terms[i])]
        rng.shuffle(lines)
        slides.append({"title": titles[i], "name": names[i], "term": terms[i], "sentences": lines})
    return slides, rng


def make(out, seed, k, snr, unseen=False, height=720):
    base = os.path.join(out, f"slides-{k}")
    if all(os.path.exists(base + ext) for ext in (".mp4", ".srt", ".txt", ".terms")):
        return
    slides, rng = plan(seed, k, unseen)
    with tempfile.TemporaryDirectory() as tmp:
        speech = array.array("h")
        cues, slide_spans = [], []
        t = 0.0
        for si, slide in enumerate(slides):
            start = t
            for sentence in slide["sentences"]:
                gap = rng.uniform(0.5, 1.2)
                speech.extend([0] * int(gap * RATE))
                t += gap
                raw, trimmed = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "s.wav")
                voice = VOICES[(k + len(cues)) % len(VOICES)]
                subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", raw, sentence], check=True)
                ff("-i", raw, "-af", "silenceremove=start_periods=1:start_threshold=-45dB,areverse,"
                   "silenceremove=start_periods=1:start_threshold=-45dB,areverse",
                   "-ar", str(RATE), "-ac", "1", "-c:a", "pcm_s16le", trimmed)
                s = read_pcm(trimmed)
                cues.append((t, t + len(s) / RATE, sentence))
                speech.extend(s)
                t += len(s) / RATE
            tail = 0.8
            speech.extend([0] * int(tail * RATE))
            t += tail
            slide_spans.append((start, t))
        # Pink noise scaled so speech (while speaking) over noise is `snr` dB.
        noise_path = os.path.join(tmp, "noise.wav")
        ff("-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate={RATE}:amplitude=0.5:seed={k + 1}",
           "-t", f"{t:.3f}", "-ac", "1", "-c:a", "pcm_s16le", noise_path)
        noise = read_pcm(noise_path)
        voiced = array.array("h", (x for x in speech if x != 0))
        scale = rms(voiced) / max(rms(noise), 1e-9) / (10 ** (snr / 20)) if snr is not None else 0.0
        n = min(len(speech), len(noise))
        mixed = array.array("h", (max(-32768, min(32767, int(speech[i] + scale * noise[i]))) for i in range(n)))
        audio = os.path.join(tmp, "mix.wav")
        write_pcm(audio, mixed)
        # One still image a slide, shown for the slide's span; laid out for 720 lines and scaled.
        inputs, concat = [], ""
        z = height / 720
        px = lambda v: int(round(v * z))
        for si, (slide, (a, b)) in enumerate(zip(slides, slide_spans)):
            draw = (
                f"drawtext=fontfile={FONT_BOLD}:text='{escape(slide['title'])}':fontsize={px(64)}:fontcolor=0x1a237e:x={px(80)}:y={px(70)},"
                f"drawbox=x={px(80)}:y={px(160)}:w={px(1120)}:h={px(4)}:color=0x1a237e:t=fill,"
                f"drawtext=fontfile={FONT}:text='\u2022 {escape(slide['name'])}':fontsize={px(52)}:fontcolor=black:x={px(100)}:y={px(260)},"
                f"drawtext=fontfile={FONT}:text='\u2022 {escape(slide['term'])}':fontsize={px(52)}:fontcolor=black:x={px(100)}:y={px(370)},"
                f"drawtext=fontfile={FONT}:text='{si + 1} / {len(slides)}':fontsize={px(28)}:fontcolor=gray:x={px(1140)}:y={px(660)}"
            )
            size = f"{px(1280) // 2 * 2}x{height // 2 * 2}"
            inputs += ["-f", "lavfi", "-i", f"color=c=white:size={size}:rate=25:duration={b - a:.3f},{draw}"]
            concat += f"[{si}:v]"
        concat += f"concat=n={len(slides)}:v=1:a=0[v]"
        ff(*inputs, "-i", audio, "-filter_complex", concat, "-map", "[v]", "-map", f"{len(slides)}:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-ar", "48000", "-ac", "2", "-shortest", base + ".tmp.mp4")
        os.replace(base + ".tmp.mp4", base + ".mp4")
    with open(base + ".srt", "w") as f:
        for i, (a, b, text) in enumerate(cues, 1):
            f.write(f"{i}\n{srt_time(a)} --> {srt_time(b)}\n{text}\n\n")
    with open(base + ".txt", "w") as f:
        f.write(" ".join(c[2] for c in cues))
    with open(base + ".terms", "w") as f:
        for slide in slides:
            f.write(f"{slide['name']}\n{slide['term']}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--snr", type=float, default=10.0, help="speech over pink noise, dB (none: --snr inf)")
    p.add_argument("--unseen", action="store_true", help="names and terms the default videos never use")
    p.add_argument("--height", type=int, default=720, help="picture height (16:9): 720, 1080, 2160")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    snr = None if math.isinf(a.snr) else a.snr
    for k in range(a.first, a.first + a.count):
        make(a.out, a.seed, k, snr, a.unseen, a.height)


if __name__ == "__main__":
    main()
