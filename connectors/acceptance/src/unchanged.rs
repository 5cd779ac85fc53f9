//! The sink scenario of values the source left out (unchanged TOAST) that
//! the target cannot find: a dead letter, never a row with NULLs.

use syncline_engine::config::WriteMode;

use crate::sink::{
    Harness, batch, close, insert, items, kept, mode_name, moved, open, sorted, t, write,
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
