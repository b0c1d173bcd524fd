"""Where the picture sits in the frame: the boxes a querier also hashes (specs/signals-and-lsh.md
3.3). Solid borders, chrome with text on it, straight frame edges, nested layers of these, and the
cells of a collage; each finder takes an (h, w, 3) uint8 array and gives (left, top, right,
bottom) boxes in its pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

MIN_SIDE = 8  # PDQ's 64x64 intermediate needs a few real pixels; 1x1..7x7 yield quality 0

# Border removal: a line (row or column) at an edge is padding when at least
# BORDER_LINE_FRACTION of its pixels lie within BORDER_TOLERANCE (per channel) of the colour of
# the outermost line. A border thinner than BORDER_MIN_FRACTION of the side is left alone (it is
# more often a natural dark edge than padding), and at most BORDER_MAX_FRACTION of a side is
# removed from one edge, so a nearly flat picture is never trimmed away.
BORDER_TOLERANCE = 24
BORDER_LINE_FRACTION = 0.98
BORDER_MIN_FRACTION = 0.01
BORDER_MAX_FRACTION = 0.45


def find_border_box(
    rgb: np.ndarray,
    line_fraction: float = BORDER_LINE_FRACTION,
    max_fraction: float = BORDER_MAX_FRACTION,
    flat_side_is_flat_picture: bool = True,
) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box left after removing solid padding from each edge
    (at most ``max_fraction`` of a side from one edge). A side uniform as far as the scan
    goes means a flat picture (nothing is removed) or, without
    ``flat_side_is_flat_picture``, only that this side is left alone."""
    height, width = rgb.shape[:2]

    def border_depth(lines: np.ndarray, side: int) -> int:
        # lines: (n, m, 3) uint8, ordered from the edge inwards. Scanned in chunks so the common
        # case (no border) costs one chunk.
        limit = int(side * max_fraction)
        minimum = max(2, int(side * BORDER_MIN_FRACTION))
        if limit < minimum:
            return 0
        reference = np.median(lines[0], axis=0)
        depth, chunk = 0, minimum
        while depth < limit:
            block = lines[depth : min(limit, depth + chunk)].astype(np.int16)
            close = np.abs(block - reference).max(axis=2) <= BORDER_TOLERANCE
            uniform = close.mean(axis=1) >= line_fraction
            if not uniform.all():
                depth += int(np.argmin(uniform))
                break
            depth += len(block)
            chunk = 64
        if depth >= limit:
            return -1  # uniform as far as we look: a flat picture, not a padded one
        return depth if depth >= minimum else 0

    columns = rgb.transpose(1, 0, 2)
    top = border_depth(rgb, height)
    bottom = border_depth(rgb[::-1], height)
    left = border_depth(columns, width)
    right = border_depth(columns[::-1], width)
    if min(top, bottom, left, right) < 0:
        if flat_side_is_flat_picture:
            return (0, 0, width, height)
        top, bottom, left, right = (max(0, d) for d in (top, bottom, left, right))
    if top + bottom >= height - MIN_SIDE or left + right >= width - MIN_SIDE:
        return (0, 0, width, height)
    return (left, top, width - right, height - bottom)


# Content box: a picture shown inside other material (a caption strip above it, app chrome
# around it in a screenshot). The same scan as border removal, but a line counts as chrome when
# only CHROME_LINE_FRACTION of its pixels match the edge colour: plain background with text or
# icons on it.
CHROME_LINE_FRACTION = 0.6


def find_content_box(
    rgb: np.ndarray,
    max_fraction: float = BORDER_MAX_FRACTION,
    flat_side_is_flat_picture: bool = True,
) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a picture embedded among plain chrome, or the
    whole frame when there is none."""
    return find_border_box(rgb, CHROME_LINE_FRACTION, max_fraction, flat_side_is_flat_picture)


# Framed box: a picture pasted into a larger canvas leaves sharp straight edges across the whole
# width (or height). An edge row is one where at least FRAME_EDGE_FRACTION of the columns change
# by more than FRAME_EDGE_STEP grey levels from the row before; the strongest edge in the outer
# FRAME_SEARCH_FRACTION of each side is taken as the picture's boundary.
FRAME_EDGE_FRACTION = 0.7
FRAME_EDGE_STEP = 20
FRAME_SEARCH_FRACTION = 0.45


def _frame_edges(luma: np.ndarray) -> tuple[int, int]:
    n = luma.shape[0]
    steps = (np.abs(np.diff(luma, axis=0)) > FRAME_EDGE_STEP).mean(axis=1)  # steps[i]: i|i+1
    reach = int(n * FRAME_SEARCH_FRACTION)
    start, stop = 0, n
    if reach >= 1:
        head = steps[:reach]
        if head.size and head.max() >= FRAME_EDGE_FRACTION:
            start = int(np.argmax(head)) + 1
        tail = steps[n - 1 - reach :]
        if tail.size and tail.max() >= FRAME_EDGE_FRACTION:
            stop = n - 1 - reach + int(np.argmax(tail)) + 1
    return start, stop


def find_framed_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box inside full-width / full-height straight edges, or the
    whole frame when there are none."""
    height, width = rgb.shape[:2]
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    top, bottom = _frame_edges(luma)
    left, right = _frame_edges(luma[top:bottom].T)
    if min(bottom - top, right - left) < max(MIN_SIDE, 0.3 * min(height, width)):
        return (0, 0, width, height)
    return (left, top, right, bottom)


# Nested chrome: a screenshot can wrap the picture in several layers (a status bar on one colour,
# then a viewer's padding on another), and each finder above strips only the layer whose colour
# the outermost line has. Applying the finders again to what is left, until nothing changes,
# peels the layers one by one; NESTED_MAX_ROUNDS bounds the work on adversarial input.
#
# Three things keep the peeling on the picture's own edge (measured on bench/transforms.py's
# screenshot_nested: 29 of 40 photos found before, 32 after; 4 of the 8 left are striped textures
# whose PDQ does not survive the screenshot's scaling even from the exact box):
# * the previous layer leaves a line or two blended by JPEG and scaling at the new edge, so the
#   padding's colour is read up to NESTED_SEAM_LINES lines in;
# * inner padding may be deeper than half of what is left (a wide picture in a tall viewer):
#   a side is peeled as far as it is uniform, up to NESTED_REACH of what is left;
# * a viewer centres the picture, so a layer inside the outermost peels a side only with its
#   opposite side about as deep (within NESTED_PAIR_SLACK, at least NESTED_PAIR_PIXELS), or
#   when what it peels has the colour of padding already peeled (an outer layer took the other
#   side): a picture's own flat sky is on one side and of its own colour, and the frame scan's
#   strongest edge inside a picture is rarely mirrored on the other side. The chrome scan's
#   loose test obeys this too inside the outermost layer (it read a picture's own dark side,
#   next to the viewer's dark padding, as chrome), and there a side margin of NESTED_PAIR_PIXELS
#   lines is padding (a viewer's margin of a few pixels, thinner than 1% of the screenshot).
#   Measured on the edits bench's 20 screenshot_nested copies: 17 found before, 19 after.
NESTED_MAX_ROUNDS = 8
NESTED_MAX_FRACTION = 0.49  # the chrome scan's limit, of what is left
NESTED_REACH = 0.9
NESTED_SEAM_LINES = 3
NESTED_PAIR_SLACK = 0.15
NESTED_PAIR_PIXELS = 3
_RUN_BLOCK = 32  # lines read at a time while looking for the end of a padding run


def _uniform_run(lines: np.ndarray, start: int, limit: int, reference: np.ndarray) -> int:
    """How many of ``lines[start:limit]`` in a row, from ``start``, are solid ``reference``.
    Read a block of lines at a time and stop at the first that is not: padding is thin, and
    reading as far as ``limit`` (up to 90% of the picture) for every side, skip and round made
    this most of a query's hashing time."""
    run = 0
    for lo in range(start, limit, _RUN_BLOCK):
        block = lines[lo : min(lo + _RUN_BLOCK, limit)].astype(np.int16)
        close = np.abs(block - reference).max(axis=2) <= BORDER_TOLERANCE
        uniform = close.mean(axis=1) >= BORDER_LINE_FRACTION
        if not uniform.all():
            return run + int(np.argmin(uniform))
        run += len(uniform)
    return run


def _padding_depth(lines: np.ndarray, limit: int, minimum: int) -> int:
    """Lines of solid padding at the start of ``lines`` ((n, m, 3), from the edge inwards),
    counting up to NESTED_SEAM_LINES blended lines before it; 0 when there is none, -1 when
    the lines are uniform as far as ``limit``."""
    best = 0
    for skip in range(min(NESTED_SEAM_LINES, len(lines) - 1) + 1):
        reference = np.median(lines[skip], axis=0)
        run = _uniform_run(lines, skip, limit, reference)
        if skip + run >= limit - skip:
            return -1
        if run >= minimum:
            best = max(best, skip + run)
    return best


def _nested_padding_box(
    inner: np.ndarray, height: int, width: int, outermost: bool
) -> tuple[int, int, int, int]:
    """The box of ``inner`` left after one layer of solid padding (a side uniform as far as
    NESTED_REACH is left alone); thinner than 1% of the whole picture's side is no padding,
    except inside the outermost layer, where NESTED_PAIR_PIXELS lines are (a viewer's thin side
    margin; the viewer test then asks for the opposite side or the padding's colour)."""
    h, w = inner.shape[:2]
    columns = inner.transpose(1, 0, 2)
    min_h = max(2, int(height * BORDER_MIN_FRACTION))
    min_w = max(2, int(width * BORDER_MIN_FRACTION))
    if not outermost:
        min_h, min_w = min(min_h, NESTED_PAIR_PIXELS), min(min_w, NESTED_PAIR_PIXELS)
    reach_h, reach_w = int(h * NESTED_REACH), int(w * NESTED_REACH)
    left, top, right, bottom = (
        max(0, _padding_depth(lines, reach, minimum))
        for lines, reach, minimum in (
            (columns, reach_w, min_w),
            (inner, reach_h, min_h),
            (columns[::-1], reach_w, min_w),
            (inner[::-1], reach_h, min_h),
        )
    )
    if top + bottom >= h - MIN_SIDE or left + right >= w - MIN_SIDE:
        return (0, 0, w, h)
    return (left, top, w - right, h - bottom)


def _side_colours(inner: np.ndarray, box: tuple[int, int, int, int]) -> list[np.ndarray | None]:
    """The colour of what ``box`` peels from each side of ``inner`` (left, top, right,
    bottom): the median of a line just inside the edge (past a blended one); None for a side
    not peeled."""
    h, w = inner.shape[:2]
    depths = (box[0], box[1], w - box[2], h - box[3])
    lines = (
        lambda k: inner[:, k],
        lambda k: inner[k],
        lambda k: inner[:, w - 1 - k],
        lambda k: inner[h - 1 - k],
    )
    return [
        np.median(line(min(2, depth - 1)), axis=0) if depth > 0 else None
        for depth, line in zip(depths, lines, strict=True)
    ]


def _peeled_like_a_viewer(
    inner: np.ndarray, box: tuple[int, int, int, int], padding: list[np.ndarray]
) -> tuple[int, int, int, int]:
    """``box`` (inside ``inner``) keeping a side peeled only when its opposite side is peeled
    about equally deep, or when what it peels has the colour of padding already peeled (the
    other side of the viewer's padding went with an outer layer)."""
    h, w = inner.shape[:2]
    depths = [box[0], box[1], w - box[2], h - box[3]]
    seen = _side_colours(inner, box)

    def padding_coloured(colour: np.ndarray | None) -> bool:
        return colour is not None and any(
            np.abs(colour - c).max() <= BORDER_TOLERANCE for c in padding
        )

    kept = list(depths)
    for a, b in ((0, 2), (1, 3)):
        da, db = depths[a], depths[b]
        if da and db and abs(da - db) <= max(NESTED_PAIR_PIXELS, NESTED_PAIR_SLACK * max(da, db)):
            continue
        for side in (a, b):
            if not padding_coloured(seen[side]):
                kept[side] = 0
    return (kept[0], kept[1], w - kept[2], h - kept[3])


def find_nested_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box left after peeling padding, chrome and frames layer
    by layer (solid padding, else chrome with text once, else the frame scan, each on what
    the previous layer left; inside the outermost layer only as a centring viewer pads), or
    the whole frame when there is nothing to peel."""
    height, width = rgb.shape[:2]
    left, top, right, bottom = 0, 0, width, height
    chrome_peeled = False
    padding: list[np.ndarray] = []  # colours peeled so far
    for round_ in range(NESTED_MAX_ROUNDS):
        inner = rgb[top:bottom, left:right]  # a view: only a few lines are read
        h, w = inner.shape[:2]
        whole = (0, 0, w, h)
        outermost = round_ == 0
        box = _nested_padding_box(inner, height, width, outermost)
        if not outermost:
            box = _peeled_like_a_viewer(inner, box, padding)
        # Chrome with text on it (the loose test) is peeled once: further in, the loose test
        # would bite into a picture whose own edge is nearly uniform.
        if box == whole and not chrome_peeled:
            reach = min(NESTED_MAX_FRACTION, BORDER_MAX_FRACTION * max(height / h, width / w))
            box = find_content_box(inner, reach, flat_side_is_flat_picture=False)
            chrome_peeled = box != whole
            if not outermost:
                # The loose test also reads a picture's own dark side as chrome in the
                # viewer's padding colour: inside the outermost layer it peels as a viewer does.
                box = _peeled_like_a_viewer(inner, box, padding)
        if box == whole:
            box = find_framed_box(inner)
            if not outermost:
                box = _peeled_like_a_viewer(inner, box, [])
        if box == whole:
            break
        padding += [c for c in _side_colours(inner, box) if c is not None]
        left, top, right, bottom = left + box[0], top + box[1], left + box[2], top + box[3]
    return (left, top, right, bottom)


# Collages: pictures placed side by side or in a grid, often with no gap (a weak seam that the
# frame finder's full-width edge test misses once JPEG has smoothed it). A seam is a straight
# line where, along most of its length, the step across it is the largest within SEAM_REACH
# lines on either side and at least SEAM_MIN_STEP grey levels: inside one picture, an edge
# rarely runs perfectly straight along a whole line, and where the picture is flat there is no
# step at all. A line is
# a seam when at least SEAM_MIN_FRACTION of its positions say so. Seams are looked for between
# SEAM_MARGIN and 1 - SEAM_MARGIN of a side (smaller cells are not queried), on a copy shrunk to
# SEAM_SIDE pixels, and a picture is cut into at most SEAM_MAX_CELLS cells.
SEAM_REACH = 3
SEAM_MIN_STEP = 6.0
SEAM_MIN_FRACTION = 0.6
SEAM_MARGIN = 0.2
SEAM_SIDE = 512
SEAM_MAX_CELLS = 4
# Collage apps lay pictures out in equal cells. In a grid the seam between two cells of other
# pictures can be faint (two crops of one photo), so a line across the whole picture falls short
# of SEAM_MIN_FRACTION while the seams around the one picture that matters are strong along
# that picture's own edges. Each cell of each GRID_LAYOUTS layout (columns, rows) is therefore
# also tested on its own: it is a query hash when each of its inner edges, scored along that
# edge only and moved up to GRID_SLACK of the side to its best position, is a seam, its steps
# taken in the colour channel that changes most (two pictures of one brightness still differ in
# hue; only the grid's fixed positions make that test safe from a picture's own texture, which
# the free seam search would cut). Measured on
# bench/transforms.py's 2x2 collage: the picture's cell among the cells 26 of 40 times before,
# 37 after. At most COLLAGE_MAX_CELLS cells are queried, the grid's first.
GRID_LAYOUTS = ((2, 1), (1, 2), (3, 1), (1, 3), (2, 2))
GRID_SLACK = 0.02
COLLAGE_MAX_CELLS = 10
# A cut found on the shrunk copy lands a pixel or two off once scaled up, and PDQ of a cell of a
# few hundred pixels moves tens of bits for it (bench/transforms.py's collages: a cell 1 pixel
# off was 42 bits from the photo where the true box gives 16). Each cut is moved to the strongest
# step within SEAM_REFINE_PIXELS of it in the picture itself.
SEAM_REFINE_PIXELS = 3


def _steps(image: np.ndarray) -> np.ndarray:
    """The step across each boundary of an (n, m, c) image's rows, as a seam is scored: between
    rows i and i + 3 (a seam JPEG or the shrinking smeared over two rows still reads as one
    step), the largest over the channels; ``steps[i]`` is the step across boundary i + 2."""
    return np.asarray(np.abs(image[3:] - image[:-3]).max(axis=2))


def _seam_score(steps: np.ndarray, b: int) -> float:
    """The fraction of positions where the step across boundary ``b`` (the first row below
    it) is a seam: at least SEAM_MIN_STEP and larger than every step across the boundaries 3 to
    3 + SEAM_REACH rows away, which do not touch it."""
    r = SEAM_REACH
    step = steps[b - 2]
    near = np.concatenate((steps[b - 5 - r : b - 5 + 1], steps[b + 1 : b + 2 + r]), axis=0)
    return float(((step > near.max(axis=0)) & (step >= SEAM_MIN_STEP)).mean())


def _best_seam(image: np.ndarray) -> tuple[int, float] | None:
    """The strongest seam between rows of ``image`` (the first row below it), with its score."""
    n = image.shape[0]
    steps = _steps(image)
    lo = max(int(n * SEAM_MARGIN), 2 + 3 + SEAM_REACH)
    hi = min(int(n * (1 - SEAM_MARGIN)), n - 1 - 3 - SEAM_REACH)
    best: tuple[int, float] | None = None
    for b in range(lo, hi + 1):
        score = _seam_score(steps, b)
        if score >= SEAM_MIN_FRACTION and (best is None or score > best[1]):
            best = (b, score)
    return best


def _seam_near(image: np.ndarray, b: int, lo: int, hi: int) -> int | None:
    """The best seam within GRID_SLACK of boundary ``b`` of ``image``'s rows, scored along
    columns ``lo:hi`` only, or None when there is none."""
    n = image.shape[0]
    slack = max(2, round(GRID_SLACK * n))
    first, last = max(b - slack, 5 + SEAM_REACH), min(b + slack, n - 4 - SEAM_REACH)
    if first > last or hi - lo < 4 * SEAM_REACH:
        return None
    steps = _steps(image[max(0, first - 5 - SEAM_REACH) : last + 5 + SEAM_REACH, lo:hi])
    shift = max(0, first - 5 - SEAM_REACH)
    # A JPEG'd seam scores alike across two or three neighbouring boundaries: the largest mean
    # step among them is the seam itself.
    scored = [
        (_seam_score(steps, c - shift), float(steps[c - shift - 2].mean()), c)
        for c in range(first, last + 1)
    ]
    score, _, best = max(scored)
    return best if score >= SEAM_MIN_FRACTION else None


def _grid_cell(
    image: np.ndarray,
    columns: np.ndarray,
    box: tuple[int, int, int, int],
    at: tuple[int, int],
    layout: tuple[int, int],
) -> tuple[int, int, int, int] | None:
    """Cell ``at`` (column, row) of ``layout``, nominally ``box``, with each inner edge moved to
    the seam near it, or None when an inner edge has no seam."""
    x0, y0, x1, y1 = box
    (i, j), (cols, rows) = at, layout
    for side, inner in enumerate((i > 0, j > 0, i < cols - 1, j < rows - 1)):
        if not inner:
            continue
        if side in (0, 2):  # a vertical edge, scored along the cell's rows
            seam = _seam_near(columns, (x0, y0, x1, y1)[side], y0, y1)
        else:
            seam = _seam_near(image, (x0, y0, x1, y1)[side], x0, x1)
        if seam is None:
            return None
        x0, y0, x1, y1 = (seam if k == side else v for k, v in enumerate((x0, y0, x1, y1)))
    return (x0, y0, x1, y1)


def _grid_cells(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The cells of the GRID_LAYOUTS layouts whose every inner edge is a seam along the cell."""
    height, width = image.shape[:2]
    columns = image.transpose(1, 0, 2)
    found = []
    for cols, rows in GRID_LAYOUTS:
        xs = [round(width * i / cols) for i in range(cols + 1)]
        ys = [round(height * j / rows) for j in range(rows + 1)]
        for j in range(rows):
            for i in range(cols):
                x0, y0, x1, y1 = xs[i], ys[j], xs[i + 1], ys[j + 1]
                cell = _grid_cell(image, columns, (x0, y0, x1, y1), (i, j), (cols, rows))
                if cell is not None:
                    found.append(cell)
    return found


def _seam_cells(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Every cell cut on the way when a picture is cut at its strongest seam, then the cell
    with the strongest seam, until SEAM_MAX_CELLS cells."""
    sh, sw = image.shape[:2]
    cells = [(0, 0, sw, sh)]
    # Every cell ever cut is kept, not only the last ones: a straight edge inside one picture
    # can pass for a seam and cut it again, and the picture must still be among the cells.
    cut: list[tuple[int, int, int, int]] = []
    while len(cells) < SEAM_MAX_CELLS:
        best: tuple[float, int, int, bool] | None = None  # score, cell index, position, vertical
        for i, (x0, y0, x1, y1) in enumerate(cells):
            region = image[y0:y1, x0:x1]
            if min(region.shape[:2]) < 4 * SEAM_REACH + 4:
                continue
            for vertical, lines in ((False, region), (True, region.transpose(1, 0, 2))):
                seam = _best_seam(lines)
                if seam is not None and (best is None or seam[1] > best[0]):
                    best = (seam[1], i, seam[0], vertical)
        if best is None:
            break
        _, i, pos, vertical = best
        x0, y0, x1, y1 = cells.pop(i)
        if vertical:
            cells[i:i] = [(x0, y0, x0 + pos, y1), (x0 + pos, y0, x1, y1)]
        else:
            cells[i:i] = [(x0, y0, x1, y0 + pos), (x0, y0 + pos, x1, y1)]
        cut += cells[i : i + 2]
    return cut


def _refined(full: np.ndarray, at: int, lo: int, hi: int) -> int:
    """Boundary ``at`` between ``full``'s rows (the first row below it), a seam scaled up from
    the shrunk copy, moved to the strongest step within SEAM_REFINE_PIXELS of it, the step
    between two neighbouring rows measured along columns ``lo:hi`` in the colour channel that
    changes most."""
    n = full.shape[0]
    first, last = max(1, at - SEAM_REFINE_PIXELS), min(n - 1, at + SEAM_REFINE_PIXELS)
    if first > last or hi <= lo:
        return at
    block = full[first - 1 : last + 1, lo:hi].astype(np.int16)
    steps = np.abs(np.diff(block, axis=0)).max(axis=2).mean(axis=1)  # steps[k]: first + k
    return first + int(np.argmax(steps))


def find_collage_cells(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The (left, top, right, bottom) boxes of the pictures of a collage, or [] when the
    picture does not split: the equal-grid cells bounded by seams, then every cell cut on the
    way when splitting at the strongest seams, without near-duplicates, at most
    COLLAGE_MAX_CELLS. Seams are found on a shrunk copy and each cut is then moved to the
    strongest step near it in ``rgb`` itself."""
    height, width = rgb.shape[:2]
    scale = min(1.0, SEAM_SIDE / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(np.ascontiguousarray(rgb)).resize(small_size, Image.Resampling.BOX)
    colour = np.asarray(small, dtype=np.float64)
    luma = np.asarray(small.convert("L"), dtype=np.float64)[:, :, None]
    columns = rgb.transpose(1, 0, 2)
    sw, sh = small_size
    scaled: list[tuple[int, int, int, int]] = []
    out: list[tuple[int, int, int, int]] = []
    for x0, y0, x1, y1 in _grid_cells(colour) + _seam_cells(luma):
        left, right = round(x0 / scale), min(width, round(x1 / scale))
        top, bottom = round(y0 / scale), min(height, round(y1 / scale))
        box = (left, top, right, bottom)
        near = any(max(abs(a - b) for a, b in zip(box, o, strict=True)) <= 4 for o in scaled)
        if min(right - left, bottom - top) < MIN_SIDE or near:
            continue
        scaled.append(box)
        # An edge of the shrunk copy is the picture's edge; a cut inside is moved to the
        # strongest step near it, along the cell's extent.
        left = 0 if x0 == 0 else _refined(columns, left, top, bottom)
        right = width if x1 == sw else _refined(columns, right, top, bottom)
        top = 0 if y0 == 0 else _refined(rgb, top, left, right)
        bottom = height if y1 == sh else _refined(rgb, bottom, left, right)
        if min(right - left, bottom - top) >= MIN_SIDE:
            out.append((left, top, right, bottom))
    return out[:COLLAGE_MAX_CELLS]
