//! The charts screen: training runs' curves and a pretrained network's card.

use super::*;

fn training_row(id: i64) -> promptlab::store::TrainingRunRow {
    let epochs: Vec<serde_json::Value> = (1..=5)
        .map(|e| {
            let e = f64::from(e);
            serde_json::json!({"epoch": e, "train_loss": 1.0 / e, "validation_loss": 0.8 / e + 0.05,
                "train_accuracy": 1.0 - 0.3 / e, "validation_accuracy": 1.0 - 0.2 / e})
        })
        .collect();
    promptlab::store::TrainingRunRow {
        id,
        kind: "digit-cnn".into(),
        dataset: "mnist".into(),
        preset: "mnist".into(),
        started_at: "2026-11-28T01:00:00+00:00".into(),
        finished_at: None,
        status: "finished".into(),
        parameters: 225_226,
        config_json: "{}".into(),
        card_json: Some(serde_json::json!({"epochs": epochs}).to_string()),
        weights_path: None,
        test_accuracy: Some(0.9912),
    }
}

/// A card for MobileNetV2 features with a new head on Fashion-MNIST, as
/// `--backbone mobilenet_v2 --freeze all` writes it.
fn mobilenet_card() -> serde_json::Value {
    use promptlab::vision::{dataset::DatasetKind, mobilenet, train};
    let backbone = mobilenet::mobilenet_v2();
    let layers = train::layer_summary(&backbone.layers, [3, 96, 96], 10).unwrap();
    let parameters = layers.iter().map(|l| l.params).sum();
    let card = train::ModelCard {
        format: train::CARD_FORMAT.into(),
        config: train::TrainConfig {
            dataset: DatasetKind::FashionMnist,
            preset: mobilenet::NAME.into(),
            layers: backbone.layers.clone(),
            optimizer: train::OptimizerKind::Adam,
            learning_rate: 1e-3,
            schedule: train::Schedule::Constant,
            batch_size: 64,
            epochs: 5,
            seed: 1,
            validation_split: 0.1,
            patience: None,
            augmentation: promptlab::vision::augment::Augmentation::NONE,
            train_limit: Some(1000),
            backbone: Some(mobilenet::NAME.into()),
            image_size: Some(96),
            init: None,
            frozen_layers: backbone.blocks[backbone.block_count()],
        },
        classes: (0..10).map(|c| c.to_string()).collect(),
        input: [1, 28, 28],
        mean: 0.0,
        std: 1.0,
        adapt: Some(train::Adaptation::imagenet(96)),
        layers,
        parameters,
        frozen_parameters: 2_223_872,
        epochs: (1..=5)
            .map(|epoch| train::EpochStats {
                epoch,
                learning_rate: 1e-3,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: 1.0 - 0.3 / epoch as f64,
                validation_loss: 0.8 / epoch as f64 + 0.05,
                validation_accuracy: 1.0 - 0.2 / epoch as f64,
                images_per_s: 40_000.0,
                seconds: 0.1,
            })
            .collect(),
        best_epoch: 5,
        stopped_early: false,
        test: None,
        train_seconds: 1.0,
        feature_seconds: 0.5,
        labelled_images: 1000,
    };
    serde_json::to_value(card).unwrap()
}

#[test]
fn charts_draw_a_pretrained_network_block_by_block() {
    let mut app = app_with_run((140, 40));
    press(&mut app, "8");
    press(&mut app, "t");
    let mut row = training_row(5);
    row.card_json = Some(mobilenet_card().to_string());
    app.update(Event::TrainingRunsListed(Ok(vec![row])));
    let blocks = &app.charts.runs[0].blocks;
    assert_eq!(
        blocks.len(),
        21,
        "19 blocks, the dropout and the classes layer"
    );
    assert!(blocks[..19].iter().all(|b| b.frozen) && !blocks[20].frozen);
    assert_eq!(blocks[3].name, "inverted residual (expand to 144) + skip");
    assert_eq!(blocks[3].output, "24×24×24");
    let screen = screen_text(&app);
    assert!(
        screen.contains("Network · 2236682 parameters, 2223872 frozen"),
        "{screen}"
    );
    insta::assert_snapshot!("training_network_140x40", draw(&app).backend().to_string());
}

#[test]
fn charts_switch_to_training_curves() {
    let mut app = app_with_run((120, 40));
    assert_eq!(press(&mut app, "8"), [Effect::ListTrainingRuns]);
    assert!(!app.charts.training);
    assert_eq!(press(&mut app, "t"), [Effect::ListTrainingRuns]);
    assert!(app.charts.training);
    assert!(screen_text(&app).contains("No training runs yet"));
    app.update(Event::TrainingRunsListed(Ok(vec![
        training_row(4),
        training_row(3),
    ])));
    assert_eq!(app.charts.runs[0].epochs.len(), 5);
    let screen = screen_text(&app);
    assert!(
        screen.contains("Loss · run 4 (5 epochs, finished)"),
        "{screen}"
    );
    assert!(screen.contains("99.12%"), "{screen}");
    press(&mut app, "j");
    assert_eq!(app.charts.selected, 1);
    press(&mut app, "t");
    assert!(!app.charts.training);
    insta::assert_snapshot!("training_curves_120x40", {
        app.charts.training = true;
        draw(&app).backend().to_string()
    });
}
