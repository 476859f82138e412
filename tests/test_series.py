"""Reading series files: columns, dates, footers, and one clear error for each bad file."""

import datetime as dt

import numpy as np
import pytest
from conftest import seasonal_series, write_seasonal_csv

from tf_sine.series import future_dates, parse_dates, read_series_file


def test_reads_the_only_numeric_column_and_keeps_the_dates(tmp_path):
    series = read_series_file(write_seasonal_csv(tmp_path / "s.csv", n=30))
    assert series.name == "sales" and series.time_name == "month"
    np.testing.assert_allclose(series.values, seasonal_series(30), atol=5e-5)
    assert series.dates[0] == dt.datetime(1980, 1, 1) and series.dates[-1] == dt.datetime(1982, 6, 1)


def test_column_choice_quotes_semicolons_and_a_footer_line(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text('"Date";"Temp";"Rain"\n"1981-01-01";20.7;0\n"1981-01-02";17.9;1.5\n\n'
                    '"1981-01-03";18.8;0\n"Daily temperatures, a published export"\n')  # fmt: skip
    series = read_series_file(path, column="Rain")
    assert series.values.tolist() == [0.0, 1.5, 0.0] and len(series.dates) == 3
    with pytest.raises(ValueError, match=r"^column: expected the name of the value column of export.csv "
                                         r"\(numeric columns: 'Temp', 'Rain'\)"):  # fmt: skip
        read_series_file(path)


def test_compact_eight_digit_dates_are_dates(tmp_path):
    path = tmp_path / "weekly.csv"
    path.write_text("date,co2\n19580329,316.1\n19580405,317.3\n19580412,317.6\n")
    series = read_series_file(path)
    assert list(series.dates) == [dt.datetime(1958, 3, 29), dt.datetime(1958, 4, 5), dt.datetime(1958, 4, 12)]
    assert future_dates(series.dates, 1) == [dt.datetime(1958, 4, 19)]  # weekly, on Saturdays


def test_a_numeric_year_column_is_time_not_a_value(tmp_path):
    path = tmp_path / "yearly.csv"
    path.write_text("Year,count\n1700,5\n1701,11\n1702,16\n")
    series = read_series_file(path)
    assert (series.name, series.dates) == ("count", [1700, 1701, 1702])
    assert future_dates(series.dates, 2) == [1703, 1704]


def test_npy_files_one_dimensional_or_one_column(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(5.0).reshape(5, 1))
    series = read_series_file(tmp_path / "a.npy")
    assert series.values.tolist() == [0, 1, 2, 3, 4] and series.dates is None
    np.save(tmp_path / "b.npy", np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"^data: expected a 1-D numeric array"):
        read_series_file(tmp_path / "b.npy")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("m,v\n2020-01,1\n2020-02,x\n2020-03,2\n", "data: expected numbers in column 'v', got 'x' on line 3 of f.csv"),
        ("m,v\n2020-01,1\n2020-02,\n2020-03,2\n", "data: expected a number in column 'v', got an empty cell on line 3"),
        ("m,v\n2020-01,1\n2020-03,2\n2020-02,3\n",
         "data: expected increasing dates in column 'm' of f.csv, got '2020-02' on line 4 after '2020-03' on line 3"),
        ("m,v\n2020-01,1\n2020-01,2\n", "data: expected increasing dates in column 'm'"),
        ("m,v\n2020-01,1,7\n2020-02,2\n", "data: expected 2 fields like the header on line 2 of f.csv, got 3"),
        ("m,v\n", "data: expected a header row and at least one row of values"),
        ("m,v\n2020-01,a\n2020-02,b\n", "column: expected the name of the value column of f.csv (numeric columns: none)"),
        ("m,v\n2020-01,1\n2020-02,2\n2020-O3,3\n2020-04,4\n",
         "data: expected a date in column 'm' like '2020-01', got '2020-O3' on line 4 of f.csv"),
        ("m,v\n2020-01,1\n2020-02,2\n,3\n2020-04,4\n",
         "data: expected a date in column 'm' like '2020-01', got an empty cell on line 4 of f.csv"),
        ("d,v\n13/02/2020,1\n14/02/2020,2\n15/02/2O20,3\n16/02/2020,4\n",
         "data: expected a date in column 'd' like '13/02/2020', got '15/02/2O20' on line 4 of f.csv"),
        ("m,v\n2020-01,\n2020-02,\n", "column: expected the name of the value column of f.csv (numeric columns: none; 'v' has only empty cells)"),
        ("m,v\nnotadate,1\n2020-02,2\n2020-03,3\n2020-04,4\n",  # the first cell, which a format is not guessed from
         "data: expected a date in column 'm' like '2020-02', got 'notadate' on line 2 of f.csv"),
    ],
)  # fmt: skip
def test_bad_files_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "f.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        read_series_file(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_missing_column(tmp_path):
    with pytest.raises(
        ValueError, match=r"^data: expected an existing \.csv or \.npy file, got '.*nope\.csv'"
    ):
        read_series_file(tmp_path / "nope.csv")
    path = write_seasonal_csv(tmp_path / "s.csv", n=5)
    with pytest.raises(ValueError, match=r"^column: expected one of 'month', 'sales' .*, got 'price'"):
        read_series_file(path, column="price")


def test_date_formats_and_their_continuation():
    assert list(parse_dates(["2020-01-31", "2020-02-29"])) == [
        dt.datetime(2020, 1, 31),
        dt.datetime(2020, 2, 29),
    ]
    assert parse_dates(["01/31/2020", "02/01/2020"])[1] == dt.datetime(2020, 2, 1)
    assert parse_dates(["31.01.2020", "01.02.2020"])[1] == dt.datetime(2020, 2, 1)  # day first: one reading
    assert list(parse_dates(["2020-01-01T01:00:00+01:00"])) == [dt.datetime(2020, 1, 1)]  # naive UTC
    assert parse_dates(["a", "2020-01"]) is None
    quarterly = [dt.datetime(2020, m, 1) for m in (1, 4, 7, 10)]
    assert future_dates(quarterly, 2) == [dt.datetime(2021, 1, 1), dt.datetime(2021, 4, 1)]
    hourly = [dt.datetime(2020, 1, 1, h) for h in range(3)]
    assert future_dates(hourly, 1) == [dt.datetime(2020, 1, 1, 3)]


def test_a_saved_dataframe_index_column_is_not_a_value(tmp_path):
    path = tmp_path / "frame.csv"
    path.write_text(",Month,Passengers\n0,1949-01,112\n1,1949-02,118\n2,1949-03,132\n")
    series = read_series_file(path)
    assert (series.name, series.time_name, series.values.tolist()) == ("Passengers", "Month", [112, 118, 132])


def _with_gaps(path, empty, n=60):
    """`write_seasonal_csv` with the value cells at positions `empty` left empty."""
    write_seasonal_csv(path, n=n)
    lines = path.read_text().splitlines()
    for position in empty:
        lines[position + 1] = lines[position + 1].split(",")[0] + ","
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gaps_are_refused_with_their_count_or_filled_and_marked(tmp_path):
    path = _with_gaps(tmp_path / "s.csv", [0, 20, 21, 59])
    with pytest.raises(ValueError) as caught:
        read_series_file(path)
    assert "got an empty cell on line 2 of s.csv (4 empty in all; `fill` can fill them" in str(caught.value)
    truth = seasonal_series(60)
    interpolated = read_series_file(path, fill="interpolate")
    np.testing.assert_array_equal(np.flatnonzero(interpolated.filled), [0, 20, 21, 59])
    # In time: January to March spans 59 days of 90 between December and March's neighbours.
    days = (interpolated.dates - interpolated.dates[0]).days.to_numpy()
    known = ~interpolated.filled
    expected = np.interp(days, days[known], np.round(truth, 4)[known])  # the ends take the nearest value
    np.testing.assert_allclose(interpolated.values, expected, atol=1e-9)
    forward = read_series_file(path, fill="ffill")
    np.testing.assert_allclose(
        forward.values[[0, 20, 21, 59]], np.round(truth[[1, 19, 19, 58]], 4), atol=1e-9
    )
    with pytest.raises(
        ValueError, match=r"^fill: expected one of 'none', 'interpolate', 'ffill', got 'mean'"
    ):
        read_series_file(path, fill="mean")


def test_missing_dates_are_gaps_refused_or_filled_like_empty_cells(tmp_path):
    import pandas as pd

    path = write_seasonal_csv(tmp_path / "s.csv", n=60)
    lines = path.read_text().splitlines()
    kept = [line for number, line in enumerate(lines) if number not in (11, 12, 40)]  # three months dropped
    path.write_text("\n".join(kept) + "\n")
    with pytest.raises(ValueError, match=r"^data: expected a row for every date at the series' frequency \(MS\), "
                       r"got none for 1980-11-01 after line 11 of s.csv \(3 missing in all; `fill` can fill"):  # fmt: skip
        read_series_file(path)
    filled = read_series_file(path, fill="interpolate")
    assert len(filled.values) == 60 and list(filled.dates) == list(
        pd.date_range("1980-01-01", periods=60, freq="MS")
    )
    np.testing.assert_array_equal(np.flatnonzero(filled.filled), [10, 11, 39])
    truth = np.round(seasonal_series(60), 4)
    days = (filled.dates - filled.dates[0]).days.to_numpy()
    known = ~filled.filled
    np.testing.assert_allclose(filled.values, np.interp(days, days[known], truth[known]), atol=1e-9)
    np.testing.assert_allclose(filled.values[known], truth[known])
    # Business days skip holidays: a missing weekday there is not a gap.
    days = pd.bdate_range("2024-01-01", periods=30).delete([5, 17])
    business = tmp_path / "b.csv"
    business.write_text("date,price\n" + "".join(f"{d:%Y-%m-%d},{i}\n" for i, d in enumerate(days)))
    assert len(read_series_file(business).values) == 28


def test_filled_values_are_never_validation_or_test_targets(tmp_path):
    from tf_sine.dataset import split_series

    series = read_series_file(_with_gaps(tmp_path / "s.csv", [5, 45, 55]), fill="interpolate")
    data = split_series(series.values, (0.7, 0.15, 0.15), 4, filled=series.filled)
    assert 5 in data.train_targets and 45 not in data.val_targets and 55 not in data.test_targets
    assert len(data.val_targets) == 8 and len(data.test_targets) == 8  # 9 positions each, one filled


def test_frequencies_pandas_infers_continue_the_dates():
    month_ends = parse_dates(["2020-01-31", "2020-02-29", "2020-03-31"])
    assert future_dates(month_ends, 2) == [dt.datetime(2020, 4, 30), dt.datetime(2020, 5, 31)]
    business = parse_dates(["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"])  # Thu Fri Mon Tue
    assert future_dates(business, 3)[-1] == dt.datetime(2024, 1, 12)  # Wed Thu Fri
    irregular = [dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 3), dt.datetime(2020, 1, 4)]
    assert future_dates(irregular, 1) == [dt.datetime(2020, 1, 5, 12)]  # the median spacing, 1.5 days


def test_a_pandas_object_reads_like_the_file_it_came_from(tmp_path):
    import pandas as pd

    from tf_sine.series import from_pandas

    path = _with_gaps(tmp_path / "s.csv", [7, 8])
    frame = pd.read_csv(path, parse_dates=["month"], index_col="month")
    from_file, from_frame = read_series_file(path, fill="interpolate"), from_pandas(frame, fill="interpolate")
    np.testing.assert_array_equal(from_frame.values, from_file.values)
    np.testing.assert_array_equal(from_frame.filled, from_file.filled)
    assert list(from_frame.dates) == list(from_file.dates) and from_frame.name == "sales"
    series = frame["sales"].tz_localize("Europe/Paris")
    assert from_pandas(series.fillna(0.0)).dates[0] == dt.datetime(1979, 12, 31, 23)  # naive UTC
    with pytest.raises(
        ValueError, match=r"^data: expected a number at 1980-08-01 00:00:00, got NaN \(2 empty"
    ):
        from_pandas(frame)
    with pytest.raises(
        ValueError,
        match=r"^data: expected increasing dates in the index, got 1984-11-01 00:00:00 after 1984-12-01",
    ):
        from_pandas(frame["sales"].fillna(0.0).iloc[::-1])
    with pytest.raises(ValueError, match=r"^column: expected the name of the DataFrame's value column"):
        from_pandas(frame.assign(price=1.0))
    as_column = from_pandas(frame.reset_index(), fill="ffill")  # the dates in a datetime column
    assert list(as_column.dates) == list(from_file.dates) and as_column.name == "sales"
    with pytest.raises(ValueError, match=r"^data: expected a pandas Series or DataFrame, got list"):
        from_pandas([1.0, 2.0])


def test_a_dataframe_reads_dates_written_as_text_and_takes_the_options_of_a_file(tmp_path):
    import pandas as pd

    from tf_sine.config import Config
    from tf_sine.pipeline import run_experiment
    from tf_sine.series import from_pandas
    from tf_sine.trained import open_run

    months = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(120)]
    values = 10 + np.sin(2 * np.pi * np.arange(120) / 12)
    frame = pd.DataFrame({"month": months, "sales": values, "price": np.ones(120)})
    assert from_pandas(frame, "sales").dates[13] == pd.Timestamp("2001-02-01")
    assert from_pandas(frame.assign(month="a"), "sales").dates is None  # text that is not dates
    broken = frame.assign(month=[*months[:7], "2000-O8", *months[8:]])
    with pytest.raises(
        ValueError, match=r"^data: expected a date in column 'month' like '2000-01', got '2000-O8' at 7"
    ):
        from_pandas(broken, "sales")
    frame.loc[5, "sales"] = np.nan
    # Options the sine refuses are a pandas table's as they are a file's.
    config = Config(layout="sequence", units=3, steps=20, checkpoint_every=20, validate_every=10, column="sales",
                    fill="interpolate", split=(0.6, 0.2, 0.2), patience=3)  # fmt: skip
    run_experiment(config, tmp_path / "run", progress=False, series=frame)
    run = open_run(tmp_path / "run")
    assert (
        run.config.split == (0.6, 0.2, 0.2) and run.config.patience == 3 and run.config.fill == "interpolate"
    )
    assert run.dataset.train_end == 72 and run.dataset.filled[5]
    assert run.forecast(2).times[1] == pd.Timestamp("2010-01-01")
    with pytest.raises(ValueError, match=r"^split: applies to a `data` file only"):
        run_experiment(config.replace(column=None, fill="none"), tmp_path / "sine", progress=False)
    assert not (tmp_path / "sine").exists()
