//! The sink scenario of values the source left out (unchanged TOAST) that
//! the target cannot find: a dead letter, never a row with NULLs.

use syncline_engine::config::WriteMode;

use syncline_engine::model::{Change, Op, Value};

use crate::sink::{
    Harness, batch, close, insert, items, kept, mode_name, moved, open, sorted, t, update, write,
};

/// A row whose left-out values the target cannot find (it holds no row
/// under the key the row had: the row was never synced, or was removed by
/// hand) becomes a dead letter saying which values and why, in every mode;
/// it is never written with NULLs. The rest of the batch is applied.
pub async fn unchanged_values_without_a_row_become_dead_letters(h: &dyn Harness) {
    for mode in [WriteMode::Upsert, WriteMode::History] {
        let target = h
            .target(&format!("unchanged_lost_{}", mode_name(mode)))
            .await;
        let (mut sink, _) = open(&*target, mode, &[items(1)]).await;
        write(&mut *sink, batch(1, vec![insert(1, "one", "body 1")])).await;
        write(
            &mut *sink,
            batch(
                2,
                vec![moved(7, 8, "never synced"), moved(1, 1, "one again")],
            ),
        )
        .await;
        close(sink).await;
        let kept = kept(&*target, mode).await;
        assert_eq!(kept.len(), 1, "{} mode: {kept:?}", mode_name(mode));
        let one = &kept[0];
        assert_eq!((one.table.as_str(), one.seq), ("items", 2));
        assert!(
            one.reason.contains("`body`") && one.reason.contains("(7)"),
            "the reason names the value left out and the key looked under: {}",
            one.reason
        );
        assert!(one.raw.contains("never synced"), "{}", one.raw);
        let rows = sorted(target.rows("items", &["id", "name", "body"]).await);
        let expected = match mode {
            WriteMode::History => vec![
                t(&[Some("1"), Some("one"), Some("body 1")]),
                t(&[Some("1"), Some("one again"), Some("body 1")]),
            ],
            _ => vec![t(&[Some("1"), Some("one again"), Some("body 1")])],
        };
        assert_eq!(rows, expected, "{} mode", mode_name(mode));
    }
}

/// A row whose last change in the target is a dead letter: the target
/// holds an older version of it, so a later change that leaves values out
/// (they are in the dead-lettered change) is set aside too, also after a
/// restart (the sink learns such rows from the dead letters it keeps),
/// until a change carrying every value brings the row back.
pub async fn a_row_whose_last_change_is_a_dead_letter_is_not_filled_from_an_older_version(
    h: &dyn Harness,
) {
    let target = h.target("withheld_upsert").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    write(&mut *sink, batch(1, vec![insert(1, "one", "body 1")])).await;
    // A new body, with a name that does not fit the text column.
    let misfit = Change {
        op: Op::Update,
        table: items(1),
        before: None,
        after: Some(vec![
            Value::Int(1),
            Value::Int(5),
            Value::Text("body 2".into()),
        ]),
    };
    write(&mut *sink, batch(2, vec![misfit])).await;
    close(sink).await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    // The body is left out: it is "body 2", which the target never got.
    write(&mut *sink, batch(3, vec![moved(1, 1, "one again")])).await;
    let rows = sorted(target.rows("items", &["id", "name", "body"]).await);
    close(sink).await;
    assert_eq!(
        rows,
        [t(&[Some("1"), Some("one"), Some("body 1")])],
        "the row as the target last had it, not `one again` with the older body"
    );
    let kept_now = kept(&*target, WriteMode::Upsert).await;
    assert_eq!(kept_now.len(), 2, "{kept_now:?}");
    let later = kept_now
        .iter()
        .find(|k| k.seq == 3)
        .unwrap_or_else(|| panic!("no dead letter of the later change: {kept_now:?}"));
    assert!(
        later.reason.contains("`body`") && later.reason.contains("dead letter"),
        "the reason names the value left out and the earlier dead letter: {}",
        later.reason
    );
    // Every value: the row is back, and later changes fill from it.
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    write(
        &mut *sink,
        batch(
            4,
            vec![update(1, "one whole", "body 4"), moved(1, 1, "one last")],
        ),
    )
    .await;
    close(sink).await;
    assert_eq!(
        sorted(target.rows("items", &["id", "name", "body"]).await),
        [t(&[Some("1"), Some("one last"), Some("body 4")])]
    );
    assert_eq!(kept(&*target, WriteMode::Upsert).await.len(), 2);
}
